/* stack.c: pooled, guarded task stacks. Part of internal.h; included through it. */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

/* ---- stack.c: pooled, guarded task stacks ----------------------------------------------------- */

typedef struct weft__stack {
    struct weft__stack *next_free;
    char *lo;   /* lowest usable byte; the guard lies just below */
    size_t size;
    bool guarded;
} weft__stack;

typedef struct weft__stack_pool {
    size_t stack_size;  /* usable bytes, page multiple */
    size_t guard_size;  /* guard bytes below each stack */
    weft__stack *free_list; /* free stacks whose pages may still be resident, most recent first */
    size_t nfree;           /* on free_list */
    weft__stack *trimmed;   /* free stacks whose pages were given back */
    struct weft__stack_slab *slabs;
    size_t slab_fill;   /* stacks handed out of the newest slab */
    uint64_t mapped;    /* stacks ever mapped */
    uint64_t trims;     /* stacks whose pages were given back, over the pool's life */
    int guard_mode;     /* see stack.c */
} weft__stack_pool;

/* Free stacks kept resident for reuse; beyond twice as many, the loop trims the rest when it idles. */
#define WEFT__STACKS_KEPT 64

int weft__stack_pool_init(weft__stack_pool *p, size_t stack_size);
void weft__stack_pool_fini(weft__stack_pool *p);
weft__stack *weft__stack_get(weft__stack_pool *p);
void weft__stack_put(weft__stack_pool *p, weft__stack *s);
void weft__stack_trim_excess(weft__stack_pool *p, size_t max);
/* Gives back the pages of up to max free stacks beyond the WEFT__STACKS_KEPT most recently freed, once
 * more than twice that many are free; inline, as the loop asks before every sleep. */
static inline void weft__stack_trim(weft__stack_pool *p, size_t max)
{
    if (WEFT__UNLIKELY(p->nfree > 2 * WEFT__STACKS_KEPT))
        weft__stack_trim_excess(p, max);
}
/* Which task's stack contains the guard page at addr, for the overflow report; NULL if none. */
bool weft__stack_guard_hit(const weft__stack *s, size_t guard_size, const void *addr);
/* Writes and checks the canary used when no guard page could be installed. */
void weft__stack_canary_set(weft__stack *s);
bool weft__stack_canary_ok(const weft__stack *s);
/* Installs the SIGSEGV handler that names the task whose stack overflowed (once per process), and an
 * alternate signal stack for the calling thread. */
int weft__overflow_handler_install(void);
void weft__overflow_handler_remove(void);

#endif /* WEFT_STACK_H */

/* timer.c: a 4-ary min-heap of deadlines. Part of internal.h; included through it. */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

/* CLOCK_MONOTONIC in nanoseconds (weft_now): what deadlines and timers are in. */
static inline uint64_t weft__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- timer.c: a 4-ary min-heap of deadlines ---------------------------------------------------- */

typedef struct weft__timer {
    uint64_t when;
    size_t heap_index; /* SIZE_MAX when not armed */
    void (*fire)(struct weft__timer *);
} weft__timer;

typedef struct weft__timer_heap {
    weft__timer **nodes;
    size_t len, cap;
} weft__timer_heap;

void weft__timer_heap_fini(weft__timer_heap *h);
/* Makes room for n armed timers, so that arming one later cannot fail. */
int weft__timer_reserve(weft__timer_heap *h, size_t n);
/* Arms t (re-arming it if armed). Cannot fail within the reserved room. */
void weft__timer_arm(weft__timer_heap *h, weft__timer *t, uint64_t when);
void weft__timer_disarm(weft__timer_heap *h, weft__timer *t);
static inline bool weft__timer_armed(const weft__timer *t) { return t->heap_index != SIZE_MAX; }
/* Earliest deadline, or UINT64_MAX when empty. */
static inline uint64_t weft__timer_next(const weft__timer_heap *h) { return h->len ? h->nodes[0]->when : UINT64_MAX; }
/* Fires every timer due at or before now; returns how many fired. */
size_t weft__timer_run(weft__timer_heap *h, uint64_t now);

#endif /* WEFT_TIMER_H */

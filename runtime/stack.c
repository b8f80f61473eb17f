/*
 * Task stacks: mapped in slabs, handed out lazily, pooled per loop, each with a guard below it.
 *
 * A slab is one mmap of WEFT__SLAB_STACKS stacks with MAP_NORESERVE: untouched pages cost neither memory
 * nor commit charge, so the default stack can be generous while a sleeping task costs the page or two
 * it touched. One mapping per slab keeps a million stacks within vm.max_map_count.
 *
 * The guard is chosen per loop, best first:
 *   - MADV_GUARD_INSTALL (Linux 6.13): page-table markers that fault on access, with no extra VMA;
 *   - mprotect(PROT_NONE): splits the slab's VMA in two per stack, so it is used only while the
 *     process stays well inside vm.max_map_count;
 *   - a canary word at the bottom of the stack, checked whenever the task switches away.
 * A fault inside a guard is reported by the SIGSEGV handler below, which names the task.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(WEFT_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define WEFT__SLAB_STACKS 64
#define WEFT__GUARD_BYTES (16 * 1024)
#define WEFT__CANARY 0x77656674c0ffee00ull

enum { GUARD_MADVISE, GUARD_MPROTECT, GUARD_CANARY };

typedef struct weft__stack_slab {
    struct weft__stack_slab *next;
    char *base;
    size_t len;
    weft__stack stacks[WEFT__SLAB_STACKS];
    unsigned valgrind_id[WEFT__SLAB_STACKS];
} weft__stack_slab;

/* VMAs added by mprotect guards in this process, against half of vm.max_map_count. */
static _Atomic long mprotect_vmas;
static long map_count_budget(void)
{
    static _Atomic long budget;
    long b = atomic_load_explicit(&budget, memory_order_relaxed);
    if (b)
        return b;
    b = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &b) != 1)
            b = 65530;
        fclose(f);
    }
    b /= 2;
    atomic_store_explicit(&budget, b, memory_order_relaxed);
    return b;
}

static size_t page_size(void)
{
    /* Loops start on many threads at once: the cache is atomic (relaxed: every thread computes the
     * same value). */
    static _Atomic size_t cached;
    size_t ps = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!ps) {
        ps = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&cached, ps, memory_order_relaxed);
    }
    return ps;
}

int weft__stack_pool_init(weft__stack_pool *p, size_t stack_size)
{
    size_t ps = page_size();
    memset(p, 0, sizeof *p);
    p->stack_size = (stack_size + ps - 1) & ~(ps - 1);
    p->guard_size = WEFT__GUARD_BYTES > ps ? WEFT__GUARD_BYTES : ps;
    p->guard_mode = GUARD_MADVISE;
    p->slab_fill = WEFT__SLAB_STACKS;
    return 0;
}

void weft__stack_pool_fini(weft__stack_pool *p)
{
    weft__stack_slab *s = p->slabs;
    while (s) {
        weft__stack_slab *next = s->next;
        for (unsigned i = 0; i < WEFT__SLAB_STACKS; i++)
            if (s->stacks[i].lo)
                VALGRIND_STACK_DEREGISTER(s->valgrind_id[i]);
        if (s->stacks[0].guarded && p->guard_mode != GUARD_MADVISE) {
            for (unsigned i = 0; i < WEFT__SLAB_STACKS; i++)
                if (s->stacks[i].guarded)
                    atomic_fetch_sub(&mprotect_vmas, 2);
        }
        munmap(s->base, s->len);
        free(s);
        s = next;
    }
    p->slabs = NULL;
    p->free_list = NULL;
    p->trimmed = NULL;
    p->nfree = 0;
}

static int slab_new(weft__stack_pool *p)
{
    weft__stack_slab *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    size_t stride = p->stack_size + p->guard_size;
    s->len = stride * WEFT__SLAB_STACKS;
    s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
    if (s->base == MAP_FAILED) {
        int err = errno;
        free(s);
        return -err;
    }
    s->next = p->slabs;
    p->slabs = s;
    p->slab_fill = 0;
    return 0;
}

/* Installs the guard below s, degrading the pool's guard mode when the kernel or budget says no. */
static void guard_install(weft__stack_pool *p, weft__stack *s)
{
    char *guard = s->lo - p->guard_size;
    if (p->guard_mode == GUARD_MADVISE) {
        if (madvise(guard, p->guard_size, MADV_GUARD_INSTALL) == 0) {
            s->guarded = true;
            return;
        }
        p->guard_mode = GUARD_MPROTECT;
    }
    if (p->guard_mode == GUARD_MPROTECT) {
        if (atomic_fetch_add(&mprotect_vmas, 2) + 2 <= map_count_budget() &&
            mprotect(guard, p->guard_size, PROT_NONE) == 0) {
            s->guarded = true;
            return;
        }
        atomic_fetch_sub(&mprotect_vmas, 2);
        p->guard_mode = GUARD_CANARY;
    }
    s->guarded = false;
}

weft__stack *weft__stack_get(weft__stack_pool *p)
{
    weft__stack *s = p->free_list;
    if (WEFT__LIKELY(s)) {
        p->free_list = s->next_free;
        p->nfree--;
        return s;
    }
    if ((s = p->trimmed)) {
        p->trimmed = s->next_free;
        return s;
    }
    if (p->slab_fill == WEFT__SLAB_STACKS && slab_new(p) < 0)
        return NULL;
    weft__stack_slab *slab = p->slabs;
    unsigned i = (unsigned)p->slab_fill++;
    s = &slab->stacks[i];
    s->lo = slab->base + (size_t)i * (p->stack_size + p->guard_size) + p->guard_size;
    s->size = p->stack_size;
    guard_install(p, s);
    if (!s->guarded)
        weft__stack_canary_set(s);
    slab->valgrind_id[i] = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
    p->mapped++;
    return s;
}

void weft__stack_put(weft__stack_pool *p, weft__stack *s)
{
    s->next_free = p->free_list;
    p->free_list = s;
    p->nfree++;
}

/*
 * After a burst of tasks, their stacks stay mapped and the pages they touched stay resident. The
 * WEFT__STACKS_KEPT most recently freed stay as they are (the next tasks take those first); up to max
 * of the older ones get their pages back with MADV_DONTNEED and move to the trimmed list, taken only
 * when the resident ones run out (a task on one faults its pages in again). A canary stack keeps its
 * lowest page, where the canary lives. The guards are below the usable range and are not touched.
 */
void weft__stack_trim_excess(weft__stack_pool *p, size_t max)
{
    weft__stack *last_kept = p->free_list;
    for (size_t i = 1; i < WEFT__STACKS_KEPT; i++)
        last_kept = last_kept->next_free;
    size_t ps = page_size();
    while (max-- && last_kept->next_free) {
        weft__stack *s = last_kept->next_free;
        last_kept->next_free = s->next_free;
        p->nfree--;
        size_t keep = s->guarded ? 0 : ps;
        if (madvise(s->lo + keep, s->size - keep, MADV_DONTNEED) == 0)
            p->trims++;
        s->next_free = p->trimmed;
        p->trimmed = s;
    }
}

bool weft__stack_guard_hit(const weft__stack *s, size_t guard_size, const void *addr)
{
    const char *a = addr;
    /* A frame too big for the guard may land below it, inside the neighbouring stack's top; the
     * report only claims what the guard proves. */
    return s && a >= s->lo - guard_size && a < s->lo;
}

void weft__stack_canary_set(weft__stack *s)
{
    *(volatile uint64_t *)s->lo = WEFT__CANARY;
}

bool weft__stack_canary_ok(const weft__stack *s)
{
    return *(volatile const uint64_t *)s->lo == WEFT__CANARY;
}

/* ---- stack overflow reporting ---------------------------------------------------------------- */

static struct sigaction previous_segv;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_error;

/* Async-signal-safe appends for the report. */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_u64(char *buf, size_t at, size_t cap, uint64_t v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at + 1 < cap)
        buf[at++] = digits[--n];
    return at;
}

static void segv_handler(int sig, siginfo_t *info, void *uctx)
{
    weft_loop *l = weft__tls_loop;
    weft_task *t = l ? l->current : NULL;
    if (t && weft__stack_guard_hit(t->stack, l->stacks.guard_size, info->si_addr)) {
        char msg[256];
        size_t n = put_str(msg, 0, sizeof msg, "weft: task ");
        if (t->name[0]) {
            n = put_str(msg, n, sizeof msg, "'");
            n = put_str(msg, n, sizeof msg, t->name);
            n = put_str(msg, n, sizeof msg, "' ");
        }
        n = put_str(msg, n, sizeof msg, "#");
        n = put_u64(msg, n, sizeof msg, t->id);
        n = put_str(msg, n, sizeof msg, " overflowed its stack of ");
        n = put_u64(msg, n, sizeof msg, t->stack->size / 1024);
        n = put_str(msg, n, sizeof msg, " KiB; raise weft_config.stack_size or WEFT_STACK_SIZE\n");
        ssize_t w = write(STDERR_FILENO, msg, n);
        (void)w;
        /* Returning re-executes the faulting access, which now kills the process with SIGSEGV. */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    if (previous_segv.sa_flags & SA_SIGINFO) {
        previous_segv.sa_sigaction(sig, info, uctx);
    } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
        previous_segv.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL);
    }
}

static void handler_install_once(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous_segv) < 0)
        handler_error = -errno;
}

/* The alternate stack this thread's loop installed, so the loop can remove it when it stops. */
static WEFT__TLS void *altstack_mem;
#define WEFT__ALTSTACK_BYTES (64 * 1024)

int weft__overflow_handler_install(void)
{
    pthread_once(&handler_once, handler_install_once);
    if (handler_error)
        return handler_error;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0; /* the thread has one already (ASan sets its own) */
    void *mem = mmap(NULL, WEFT__ALTSTACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    stack_t ss = {.ss_sp = mem, .ss_size = WEFT__ALTSTACK_BYTES, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        int err = -errno;
        munmap(mem, WEFT__ALTSTACK_BYTES);
        return err;
    }
    altstack_mem = mem;
    return 0;
}

void weft__overflow_handler_remove(void)
{
    if (!altstack_mem)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    if (sigaltstack(&ss, NULL) == 0)
        munmap(altstack_mem, WEFT__ALTSTACK_BYTES);
    altstack_mem = NULL;
}

/*
 * Timers: a 4-ary min-heap of deadlines, each node knowing its index so cancellation is O(log n).
 *
 * A 4-ary heap halves the depth of a binary one and keeps a node's children on one cache line of
 * pointers, which matters with a million sleeping tasks. Deadlines are exact (no wheel granularity):
 * the loop hands the earliest one to the kernel as its wait timeout.
 */
#include "internal.h"

#include <stdlib.h>

#define ARITY 4

static inline void place(weft__timer_heap *h, size_t i, weft__timer *t)
{
    h->nodes[i] = t;
    t->heap_index = i;
}

static void sift_up(weft__timer_heap *h, size_t i, weft__timer *t)
{
    while (i > 0) {
        size_t parent = (i - 1) / ARITY;
        if (h->nodes[parent]->when <= t->when)
            break;
        place(h, i, h->nodes[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(weft__timer_heap *h, size_t i, weft__timer *t)
{
    for (;;) {
        size_t first = i * ARITY + 1;
        if (first >= h->len)
            break;
        size_t last = first + ARITY < h->len ? first + ARITY : h->len;
        size_t min = first;
        for (size_t c = first + 1; c < last; c++)
            if (h->nodes[c]->when < h->nodes[min]->when)
                min = c;
        if (h->nodes[min]->when >= t->when)
            break;
        place(h, i, h->nodes[min]);
        i = min;
    }
    place(h, i, t);
}

int weft__timer_reserve(weft__timer_heap *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : 64;
    while (cap < n)
        cap *= 2;
    weft__timer **nodes = realloc(h->nodes, cap * sizeof *nodes);
    if (!nodes)
        return -ENOMEM;
    h->nodes = nodes;
    h->cap = cap;
    return 0;
}

void weft__timer_arm(weft__timer_heap *h, weft__timer *t, uint64_t when)
{
    if (weft__timer_armed(t))
        weft__timer_disarm(h, t);
    t->when = when;
    sift_up(h, h->len++, t);
}

void weft__timer_disarm(weft__timer_heap *h, weft__timer *t)
{
    size_t i = t->heap_index;
    if (i == SIZE_MAX)
        return;
    t->heap_index = SIZE_MAX;
    weft__timer *last = h->nodes[--h->len];
    if (i == h->len)
        return;
    if (i > 0 && h->nodes[(i - 1) / ARITY]->when > last->when)
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}

size_t weft__timer_run(weft__timer_heap *h, uint64_t now)
{
    size_t fired = 0;
    while (h->len && h->nodes[0]->when <= now) {
        weft__timer *t = h->nodes[0];
        weft__timer_disarm(h, t);
        t->fire(t);
        fired++;
    }
    return fired;
}

void weft__timer_heap_fini(weft__timer_heap *h)
{
    free(h->nodes);
    h->nodes = NULL;
    h->len = h->cap = 0;
}

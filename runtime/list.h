/* Intrusive doubly linked lists and tables indexed by fd. Part of internal.h; included through it. */
#ifndef WEFT_LIST_H
#define WEFT_LIST_H

/* ---- intrusive doubly linked lists ------------------------------------------------------------ */

/* A link embedded in whatever is listed; WEFT__CONTAINER gets the object back. */
typedef struct weft__link {
    struct weft__link *next, *prev;
} weft__link;

typedef struct weft__list {
    weft__link *head, *tail;
} weft__list;

static inline void weft__list_push(weft__list *list, weft__link *n)
{
    n->next = NULL;
    n->prev = list->tail;
    if (list->tail)
        list->tail->next = n;
    else
        list->head = n;
    list->tail = n;
}

static inline void weft__list_remove(weft__list *list, weft__link *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        list->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        list->tail = n->prev;
    n->next = n->prev = NULL;
}

static inline weft__link *weft__list_pop(weft__list *list)
{
    weft__link *n = list->head;
    if (n)
        weft__list_remove(list, n);
    return n;
}

/* ---- what the loop runs, in one FIFO ---------------------------------------------------------- */

/*
 * An entry of the loop's run queue: a ready task, or a callback (a future's, a weft_call_soon's).
 * Tasks and callbacks share the one FIFO, so they run in the order they became runnable, as asyncio's
 * call_soon orders them.
 */
typedef struct weft__runnable {
    struct weft__runnable *next;
    /* NULL for a task (its weft_task contains this); else runs the callback, outside any task. */
    void (*call)(struct weft__runnable *r);
    const void *user_fn; /* the user's function it runs, for the slow-callback report */
} weft__runnable;

/* ---- tables indexed by fd ---------------------------------------------------------------------- */

/*
 * Makes table (of *n zero-initialised elements of elem bytes) hold index, doubling from 64 elements; the
 * new ones are zeroed. Returns the table, moved or not, with *n updated; NULL (table and *n untouched)
 * when out of memory.
 */
static inline void *weft__fd_table_fit(void *table, size_t *n, size_t elem, size_t index)
{
    if (index < *n)
        return table;
    size_t grown_n = *n ? *n : 64;
    while (grown_n <= index)
        grown_n *= 2;
    char *grown = realloc(table, grown_n * elem);
    if (!grown)
        return NULL;
    memset(grown + *n * elem, 0, (grown_n - *n) * elem);
    *n = grown_n;
    return grown;
}

#endif /* WEFT_LIST_H */

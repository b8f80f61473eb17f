/*
 * Channels (asyncio.Queue): a bounded FIFO of pointers between tasks, or a rendezvous when the
 * capacity is 0.
 *
 * Blocked senders and receivers wait in FIFO queues (sync.c). An item goes straight from a sender to
 * a waiting receiver, or into the buffer; when a receiver takes from a full buffer the first blocked
 * sender's item moves in behind. So the buffer is never non-empty while receivers wait, nor has room
 * while senders wait, and items come out in the order their senders were admitted.
 *
 * Like asyncio.Queue, a channel counts the items it has taken in that nobody has yet marked done
 * (weft_chan_task_done): weft_chan_join waits until that count is back to zero. An item counts from
 * the moment the channel accepts it — into the buffer or straight to a receiver — not while its
 * sender still waits for room.
 *
 * weft_chan_recv_async puts a future in the receivers' queue, so a channel can be waited on together
 * with other futures (weft_wait_any over channels and timeouts).
 */
#include "internal.h"

#include <stdlib.h>

struct weft_chan {
    size_t capacity;
    size_t head, count;
    bool closed;
    size_t unfinished;  /* items accepted and not yet marked done */
    weft__wq joiners;   /* tasks in weft_chan_join */
    weft__wq senders;   /* nodes carry the item they offer */
    weft__wq receivers; /* nodes receive the item in result */
    void *items[];
};

weft_chan *weft_chan_new(size_t capacity)
{
    if (capacity > (SIZE_MAX - sizeof(weft_chan)) / sizeof(void *)) {
        errno = EINVAL;
        return NULL;
    }
    weft_chan *c = calloc(1, sizeof *c + capacity * sizeof(void *));
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->capacity = capacity;
    return c;
}

/* Without waiting: 0 if item went to a receiver or the buffer, -EAGAIN if it must wait, -EPIPE. */
static int send_now(weft_chan *c, void *item)
{
    if (c->closed)
        return -EPIPE;
    weft__wq_node *r = weft__wq_pop(&c->receivers);
    if (r) {
        c->unfinished++;
        r->item = item;
        weft__wq_grant(r, 0);
        return 0;
    }
    if (c->count < c->capacity) {
        c->unfinished++;
        c->items[(c->head + c->count++) % c->capacity] = item;
        return 0;
    }
    return -EAGAIN;
}

/* Without waiting: 0 with *item, -EAGAIN if it must wait, -EPIPE once closed and drained. */
static int recv_now(weft_chan *c, void **item)
{
    if (c->count) {
        *item = c->items[c->head];
        c->head = (c->head + 1) % c->capacity;
        c->count--;
        weft__wq_node *s = weft__wq_pop(&c->senders);
        if (s) {
            c->unfinished++;
            c->items[(c->head + c->count++) % c->capacity] = s->item;
            weft__wq_grant(s, 0);
        }
        return 0;
    }
    weft__wq_node *s = weft__wq_pop(&c->senders);
    if (s) { /* rendezvous: straight from the sender */
        c->unfinished++;
        *item = s->item;
        weft__wq_grant(s, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

int weft_chan_try_send(weft_chan *c, void *item)
{
    return c ? send_now(c, item) : -EINVAL;
}

int weft_chan_try_recv(weft_chan *c, void **item)
{
    if (!c || !item)
        return -EINVAL;
    return recv_now(c, item);
}

int weft_chan_send(weft_chan *c, void *item)
{
    weft_task *t;
    int r = weft__wait_check(c != NULL, &t);
    if (r)
        return r;
    r = send_now(c, item);
    if (r != -EAGAIN)
        return r;
    weft__wq_node n;
    n.item = item;
    return (int)weft__wq_wait(&c->senders, &n, t, "weft_chan_send");
}

int weft_chan_recv(weft_chan *c, void **item)
{
    weft_task *t;
    int r = weft__wait_check(c && item, &t);
    if (r)
        return r;
    r = recv_now(c, item);
    if (r != -EAGAIN)
        return r;
    weft__wq_node n;
    intptr_t v = weft__wq_wait(&c->receivers, &n, t, "weft_chan_recv");
    if (v == 0)
        *item = n.item;
    return (int)v;
}

weft_future *weft_chan_recv_async(weft_chan *c)
{
    weft_loop *l = weft__tls_loop;
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    if (!c) {
        errno = EINVAL;
        return NULL;
    }
    weft_future *f = weft_future_new();
    if (!f)
        return NULL;
    void *item;
    int r = recv_now(c, &item);
    if (r != -EAGAIN) {
        weft__future_complete(l, f, r < 0 ? r : (intptr_t)item);
        return f;
    }
    weft__wq_node *n = calloc(1, sizeof *n);
    if (!n) {
        weft_future_free(f);
        errno = ENOMEM;
        return NULL;
    }
    n->future = f;
    f->wq_node = n;
    weft__wq_push(&c->receivers, n);
    return f;
}

void weft_chan_close(weft_chan *c)
{
    if (!c || c->closed)
        return;
    c->closed = true;
    weft__wq_fail_all(&c->senders, -EPIPE);
    /* Receivers only wait on an empty buffer: there is nothing left for them. */
    weft__wq_fail_all(&c->receivers, -EPIPE);
}

size_t weft_chan_len(const weft_chan *c)
{
    return c ? c->count : 0;
}

int weft_chan_task_done(weft_chan *c)
{
    if (!c || c->unfinished == 0)
        return -EINVAL;
    if (--c->unfinished == 0)
        weft__wq_fail_all(&c->joiners, 0);
    return 0;
}

int weft_chan_join(weft_chan *c)
{
    weft_task *t;
    int r = weft__wait_check(c != NULL, &t);
    if (r)
        return r;
    if (c->unfinished == 0)
        return 0;
    weft__wq_node n;
    return (int)weft__wq_wait(&c->joiners, &n, t, "weft_chan_join");
}

size_t weft_chan_unfinished(const weft_chan *c)
{
    return c ? c->unfinished : 0;
}

void weft_chan_free(weft_chan *c)
{
    if (!c)
        return;
    weft_chan_close(c);
    weft__wq_fail_all(&c->joiners, -EPIPE);
    free(c);
}

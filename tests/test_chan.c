/*
 * Channels (asyncio.Queue): the seeds' producers and consumers over a bounded channel, FIFO order,
 * rendezvous, close, try_send/try_recv, FIFO among blocked senders and among blocked receivers,
 * cancellation and deadlines of blocked sends and receives, weft_chan_recv_async with wait_any, and
 * join/task_done (what counts as accepted, interruption, close and free).
 */
#include <limits.h>

#include "common.h"

TestSuite(chan, .timeout = 60);

#define ITEM(k) ((void *)(intptr_t)(k))

/* A small deterministic generator per task, so runs are repeatable. */
static uint32_t next_rand(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* ---- the seeds' producers and consumers ----------------------------------------------------------- */

#define PRODUCERS 10
#define ITEMS_EACH 100
#define CONSUMERS 15

struct pc_world {
    weft_chan *chan;
    int seen[PRODUCERS][ITEMS_EACH];
    int last_seq[CONSUMERS][PRODUCERS]; /* the last item each consumer had from each producer */
    int order_errors;
};

struct pc_role {
    struct pc_world *world;
    int id;
    uint32_t rng;
};

/* A random pause of 0-750 µs, as the seeds' random_sleep. */
static void random_pause(uint32_t *rng)
{
    EQ(weft_sleep((uint64_t)(next_rand(rng) % 4) * 250000u), 0);
}

static intptr_t producer(void *arg)
{
    struct pc_role *r = arg;
    for (int i = 0; i < ITEMS_EACH; i++) {
        random_pause(&r->rng);
        EQ(weft_chan_send(r->world->chan, ITEM(r->id * ITEMS_EACH + i + 1)), 0);
    }
    return 0;
}

static intptr_t consumer(void *arg)
{
    struct pc_role *r = arg;
    struct pc_world *w = r->world;
    intptr_t received = 0;
    for (;;) {
        void *item = NULL;
        int rc = weft_chan_recv(w->chan, &item);
        if (rc == -EPIPE)
            return received;
        EQ(rc, 0);
        intptr_t k = (intptr_t)item - 1;
        cr_assert(k >= 0 && k < PRODUCERS * ITEMS_EACH, "consumer %d received a bad item %jd", r->id, (intmax_t)k);
        int p = (int)(k / ITEMS_EACH), seq = (int)(k % ITEMS_EACH);
        w->seen[p][seq]++;
        if (seq <= w->last_seq[r->id][p])
            w->order_errors++;
        w->last_seq[r->id][p] = seq;
        received++;
        random_pause(&r->rng);
    }
}

static intptr_t producers_consumers_main(void *arg)
{
    struct pc_world *w = arg;
    w->chan = weft_chan_new(5);
    cr_assert(w->chan != NULL);
    for (int c = 0; c < CONSUMERS; c++)
        for (int p = 0; p < PRODUCERS; p++)
            w->last_seq[c][p] = -1;
    struct pc_role producers[PRODUCERS], consumers[CONSUMERS];
    weft_task *pt[PRODUCERS], *ct[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        consumers[i] = (struct pc_role){w, i, 1000u + (uint32_t)i};
        ct[i] = weft_spawn(consumer, &consumers[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        producers[i] = (struct pc_role){w, i, 7u * (uint32_t)i + 1};
        pt[i] = weft_spawn(producer, &producers[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        EQ(weft_join(pt[i]), 0);
    weft_chan_close(w->chan); /* the consumers drain what is left, then see -EPIPE */
    intptr_t total = 0;
    for (int i = 0; i < CONSUMERS; i++)
        total += weft_join(ct[i]);
    EQ(total, PRODUCERS * ITEMS_EACH);
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < ITEMS_EACH; i++)
            cr_assert(w->seen[p][i] == 1, "item %d of producer %d received %d times", i, p, w->seen[p][i]);
    EQ(w->order_errors, 0);
    EQ(weft_chan_len(w->chan), 0);
    weft_chan_free(w->chan);
    return 0;
}

Test(chan, ten_producers_fifteen_consumers_bounded_channel_every_item_received_once)
{
    static struct pc_world w;
    EQ(run(producers_consumers_main, &w), 0);
}

/* One consumer sees every item: each producer's items must come out in the order it sent them. */
#define FIFO_PRODUCERS 4
#define FIFO_ITEMS 60

struct fifo_world {
    weft_chan *chan;
    int order[FIFO_PRODUCERS * FIFO_ITEMS];
    int n;
};

struct fifo_producer {
    struct fifo_world *world;
    int id;
    uint32_t rng;
};

static intptr_t fifo_producer(void *arg)
{
    struct fifo_producer *p = arg;
    for (int i = 0; i < FIFO_ITEMS; i++) {
        if (next_rand(&p->rng) % 2)
            weft_yield();
        EQ(weft_chan_send(p->world->chan, ITEM(p->id * 1000 + i)), 0);
    }
    return 0;
}

static intptr_t fifo_per_producer_main(void *arg)
{
    (void)arg;
    struct fifo_world w = {.chan = weft_chan_new(3)};
    struct fifo_producer ps[FIFO_PRODUCERS];
    weft_task *ts[FIFO_PRODUCERS];
    for (int i = 0; i < FIFO_PRODUCERS; i++) {
        ps[i] = (struct fifo_producer){&w, i, 31u * (uint32_t)i + 5};
        ts[i] = weft_spawn(fifo_producer, &ps[i]);
    }
    int next[FIFO_PRODUCERS] = {0};
    for (int k = 0; k < FIFO_PRODUCERS * FIFO_ITEMS; k++) {
        void *item;
        EQ(weft_chan_recv(w.chan, &item), 0);
        int p = (int)(intptr_t)item / 1000, i = (int)(intptr_t)item % 1000;
        cr_assert(p >= 0 && p < FIFO_PRODUCERS, "bad item %d", (int)(intptr_t)item);
        cr_assert(i == next[p], "producer %d: item %d came out when %d was next", p, i, next[p]);
        next[p]++;
        if (k % 3 == 0)
            weft_yield();
    }
    for (int i = 0; i < FIFO_PRODUCERS; i++)
        EQ(weft_join(ts[i]), 0);
    EQ(weft_chan_try_recv(w.chan, &(void *){NULL}), -EAGAIN);
    weft_chan_free(w.chan);
    return 0;
}

Test(chan, items_of_one_producer_come_out_in_the_order_sent)
{
    EQ(run(fifo_per_producer_main, NULL), 0);
}

/* ---- rendezvous ------------------------------------------------------------------------------------ */

struct sender {
    weft_chan *chan;
    void *item;
    int id;
    uint64_t deadline_in; /* if set: sends under a deadline this far away */
    int rc, next_rc;
};

/* Records id, sends, records id + 100, and after a successful send makes one more suspending call. */
static intptr_t sender_task(void *arg)
{
    struct sender *s = arg;
    ev(s->id);
    if (s->deadline_in)
        weft_deadline_push(weft_now() + s->deadline_in);
    s->rc = weft_chan_send(s->chan, s->item);
    if (s->deadline_in)
        weft_deadline_pop();
    ev(s->id + 100);
    if (s->rc == 0)
        s->next_rc = weft_sleep(0);
    return s->rc;
}

struct receiver {
    weft_chan *chan;
    int id;
    uint64_t deadline_in;
    int rc, next_rc;
    void *item;
};

/* Receives, records id (and the item as id * 1000 + item when it got one), then one more suspending
 * call after a successful receive. */
static intptr_t receiver_task(void *arg)
{
    struct receiver *r = arg;
    r->item = ITEM(-1);
    if (r->deadline_in)
        weft_deadline_push(weft_now() + r->deadline_in);
    r->rc = weft_chan_recv(r->chan, &r->item);
    if (r->deadline_in)
        weft_deadline_pop();
    if (r->rc == 0) {
        ev(r->id * 1000 + (int)(intptr_t)r->item);
        r->next_rc = weft_sleep(0);
    } else {
        ev(r->id);
    }
    return r->rc;
}

static intptr_t rendezvous_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(0);
    cr_assert(c != NULL);
    EQ(weft_chan_try_send(c, ITEM(1)), -EAGAIN); /* nobody to take it */
    struct sender s = {.chan = c, .item = ITEM(42), .id = 1};
    weft_task *t = weft_spawn(sender_task, &s);
    weft_yield();
    EV_EXPECT(1); /* blocked in send: no receiver yet */
    EQ(weft_chan_len(c), 0);
    ev(2);
    void *item = NULL;
    EQ(weft_chan_recv(c, &item), 0);
    EQ((intptr_t)item, 42);
    ev(3);
    EQ(weft_join(t), 0);
    EV_EXPECT(1, 2, 3, 101);
    EQ(weft_chan_try_recv(c, &item), -EAGAIN); /* nobody offering */
    weft_chan_free(c);
    return 0;
}

Test(chan, rendezvous_send_blocks_until_a_receiver_takes_the_item)
{
    EQ(run(rendezvous_main, NULL), 0);
}

static intptr_t rendezvous_receiver_first_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(0);
    struct receiver r = {.chan = c, .id = 1};
    weft_task *t = weft_spawn(receiver_task, &r);
    weft_yield();
    EQ(weft_chan_try_send(c, ITEM(7)), 0); /* a receiver waits: it takes it */
    EQ(weft_join(t), 0);
    EV_EXPECT(1007);
    EQ(weft_chan_len(c), 0);
    weft_chan_free(c);
    return 0;
}

Test(chan, rendezvous_try_send_succeeds_when_a_receiver_waits)
{
    EQ(run(rendezvous_receiver_first_main, NULL), 0);
}

/* ---- close ----------------------------------------------------------------------------------------- */

static intptr_t close_senders_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(2);
    EQ(weft_chan_send(c, ITEM(1)), 0);
    EQ(weft_chan_send(c, ITEM(2)), 0);
    struct sender s = {.chan = c, .item = ITEM(3), .id = 1};
    weft_task *t = weft_spawn(sender_task, &s);
    weft_yield();
    EV_EXPECT(1);
    weft_chan_close(c);
    weft_yield();
    EV_EXPECT(1, 101); /* the blocked sender woke at the close, not later */
    EQ(weft_join(t), -EPIPE);
    EQ(weft_chan_send(c, ITEM(4)), -EPIPE);
    EQ(weft_chan_try_send(c, ITEM(5)), -EPIPE);
    weft_chan_close(c); /* again: nothing changes */
    /* What was buffered is still delivered, then -EPIPE; the refused items never are. */
    EQ(weft_chan_len(c), 2);
    void *item = NULL;
    EQ(weft_chan_recv(c, &item), 0);
    EQ((intptr_t)item, 1);
    EQ(weft_chan_try_recv(c, &item), 0);
    EQ((intptr_t)item, 2);
    EQ(weft_chan_recv(c, &item), -EPIPE);
    EQ(weft_chan_try_recv(c, &item), -EPIPE);
    weft_future *f = weft_chan_recv_async(c);
    cr_assert(f != NULL);
    EQ(weft_await(f), -EPIPE);
    weft_future_free(f);
    weft_chan_free(c);
    return 0;
}

Test(chan, close_fails_senders_with_epipe_at_once_and_receivers_drain_then_get_epipe)
{
    EQ(run(close_senders_main, NULL), 0);
}

static intptr_t close_receivers_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(2);
    struct receiver r1 = {.chan = c, .id = 1}, r2 = {.chan = c, .id = 2};
    weft_task *t1 = weft_spawn(receiver_task, &r1), *t2 = weft_spawn(receiver_task, &r2);
    weft_future *f = weft_chan_recv_async(c);
    weft_yield();
    EV_EXPECT();
    cr_assert(!weft_future_done(f));
    weft_chan_close(c);
    EQ(weft_join(t1), -EPIPE);
    EQ(weft_join(t2), -EPIPE);
    EQ(weft_await(f), -EPIPE);
    weft_future_free(f);
    weft_chan_free(c);
    return 0;
}

Test(chan, close_wakes_blocked_receivers_with_epipe)
{
    EQ(run(close_receivers_main, NULL), 0);
}

static intptr_t free_wakes_main(void *arg)
{
    (void)arg;
    weft_chan *full = weft_chan_new(1), *empty = weft_chan_new(1);
    EQ(weft_chan_try_send(full, ITEM(1)), 0);
    struct sender s = {.chan = full, .item = ITEM(2), .id = 1};
    struct receiver r = {.chan = empty, .id = 2};
    weft_task *ts = weft_spawn(sender_task, &s), *tr = weft_spawn(receiver_task, &r);
    weft_yield();
    weft_chan_free(full);
    weft_chan_free(empty);
    EQ(weft_wait_for(ts, SEC(5)), -EPIPE);
    EQ(weft_wait_for(tr, SEC(5)), -EPIPE);
    return 0;
}

Test(chan, freeing_a_channel_wakes_blocked_senders_and_receivers_with_epipe)
{
    EQ(run(free_wakes_main, NULL), 0);
}

/* ---- try_send, try_recv, errors ------------------------------------------------------------------- */

static intptr_t try_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(2);
    void *item = ITEM(99);
    EQ(weft_chan_try_recv(c, &item), -EAGAIN);
    EQ((intptr_t)item, 99); /* untouched */
    EQ(weft_chan_try_send(c, ITEM(1)), 0);
    EQ(weft_chan_try_send(c, ITEM(2)), 0);
    EQ(weft_chan_try_send(c, ITEM(3)), -EAGAIN);
    EQ(weft_chan_len(c), 2);
    EQ(weft_chan_try_recv(c, &item), 0);
    EQ((intptr_t)item, 1);
    EQ(weft_chan_try_send(c, ITEM(4)), 0);
    EQ(weft_chan_try_recv(c, &item), 0);
    EQ((intptr_t)item, 2);
    EQ(weft_chan_try_recv(c, &item), 0);
    EQ((intptr_t)item, 4);
    EQ(weft_chan_try_recv(c, &item), -EAGAIN);
    EQ(weft_chan_len(c), 0);
    weft_chan_free(c);
    return 0;
}

Test(chan, try_send_on_a_full_and_try_recv_on_an_empty_channel_give_eagain)
{
    EQ(run(try_main, NULL), 0);
}

static weft_chan *callback_chan;
static int callback_try_send_rc = INT_MIN;

static void try_send_from_callback(weft_future *f, void *arg)
{
    (void)f;
    callback_try_send_rc = weft_chan_try_send(callback_chan, arg);
}

static intptr_t try_send_callback_main(void *arg)
{
    (void)arg;
    callback_chan = weft_chan_new(0);
    struct receiver r = {.chan = callback_chan, .id = 1};
    weft_task *t = weft_spawn(receiver_task, &r);
    weft_yield();
    weft_future *f = weft_future_new();
    EQ(weft_future_on_done(f, try_send_from_callback, ITEM(5)), 0);
    EQ(weft_future_resolve(f, 0), 0);
    EQ(weft_join(t), 0);
    EQ(callback_try_send_rc, 0);
    EV_EXPECT(1005);
    weft_future_free(f);
    weft_chan_free(callback_chan);
    return 0;
}

Test(chan, try_send_works_from_a_callback_outside_any_task)
{
    EQ(run(try_send_callback_main, NULL), 0);
}

static intptr_t errors_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    void *item;
    EQ(weft_chan_send(NULL, ITEM(1)), -EINVAL);
    EQ(weft_chan_recv(NULL, &item), -EINVAL);
    EQ(weft_chan_recv(c, NULL), -EINVAL);
    EQ(weft_chan_try_send(NULL, ITEM(1)), -EINVAL);
    EQ(weft_chan_try_recv(NULL, &item), -EINVAL);
    NULL_WITH_ERRNO(weft_chan_recv_async(NULL), EINVAL);
    EQ(weft_chan_len(NULL), 0);
    weft_chan_close(NULL);
    weft_chan_free(NULL);
    weft_chan_free(c);
    return 0;
}

Test(chan, null_channel_gives_einval_and_outside_a_task_eperm)
{
    EQ(run(errors_main, NULL), 0);
    NULL_WITH_ERRNO(weft_chan_new(SIZE_MAX), EINVAL);
    weft_chan *c = weft_chan_new(1);
    void *item;
    EQ(weft_chan_send(c, ITEM(1)), -EPERM);
    EQ(weft_chan_recv(c, &item), -EPERM);
    NULL_WITH_ERRNO(weft_chan_recv_async(c), EPERM);
    weft_chan_free(c);
}

/* ---- fairness ------------------------------------------------------------------------------------- */

static intptr_t fifo_senders_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    EQ(weft_chan_send(c, ITEM(0)), 0);
    struct sender ss[5];
    weft_task *ts[5];
    for (int i = 0; i < 5; i++) {
        ss[i] = (struct sender){.chan = c, .item = ITEM(i + 1), .id = i + 1};
        ts[i] = weft_spawn(sender_task, &ss[i]);
        weft_yield(); /* queued in this order */
    }
    for (int i = 0; i <= 5; i++) {
        void *item;
        EQ(weft_chan_recv(c, &item), 0);
        EQ((intptr_t)item, i);
    }
    for (int i = 0; i < 5; i++)
        EQ(weft_join(ts[i]), 0);
    weft_chan_free(c);
    return 0;
}

Test(chan, blocked_senders_are_served_in_fifo_order)
{
    EQ(run(fifo_senders_main, NULL), 0);
}

static intptr_t fifo_receivers_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(3);
    struct receiver rs[5];
    weft_task *ts[5];
    for (int i = 0; i < 5; i++) {
        rs[i] = (struct receiver){.chan = c, .id = i + 1};
        ts[i] = weft_spawn(receiver_task, &rs[i]);
        weft_yield();
    }
    for (int i = 0; i < 5; i++)
        EQ(weft_chan_send(c, ITEM(10 + i)), 0); /* each goes straight to a waiting receiver */
    EQ(weft_chan_len(c), 0);
    for (int i = 0; i < 5; i++) {
        EQ(weft_join(ts[i]), 0);
        EQ((intptr_t)rs[i].item, 10 + i);
    }
    EV_EXPECT(1010, 2011, 3012, 4013, 5014);
    weft_chan_free(c);
    return 0;
}

Test(chan, blocked_receivers_are_served_in_fifo_order)
{
    EQ(run(fifo_receivers_main, NULL), 0);
}

/* ---- cancellation and deadlines ------------------------------------------------------------------- */

static intptr_t cancel_send_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    EQ(weft_chan_send(c, ITEM(1)), 0);
    struct sender s2 = {.chan = c, .item = ITEM(2), .id = 2}, s3 = {.chan = c, .item = ITEM(3), .id = 3};
    weft_task *t2 = weft_spawn(sender_task, &s2);
    weft_task *t3 = weft_spawn(sender_task, &s3);
    weft_yield();
    EQ(weft_cancel(t2), 0);
    EQ(weft_join(t2), -ECANCELED);
    void *item;
    EQ(weft_chan_recv(c, &item), 0);
    EQ((intptr_t)item, 1);
    EQ(weft_chan_recv(c, &item), 0);
    EQ((intptr_t)item, 3); /* the cancelled send's item was never delivered */
    EQ(weft_join(t3), 0);
    EQ(weft_chan_try_recv(c, &item), -EAGAIN);
    weft_chan_free(c);
    return 0;
}

Test(chan, cancelled_blocked_send_returns_ecanceled_and_its_item_is_not_delivered)
{
    EQ(run(cancel_send_main, NULL), 0);
}

static intptr_t cancel_recv_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    struct receiver r1 = {.chan = c, .id = 1}, r2 = {.chan = c, .id = 2};
    weft_task *t1 = weft_spawn(receiver_task, &r1), *t2 = weft_spawn(receiver_task, &r2);
    weft_yield();
    EQ(weft_cancel(t1), 0);
    EQ(weft_join(t1), -ECANCELED);
    EQ(weft_chan_send(c, ITEM(8)), 0);
    EQ(weft_wait_for(t2, SEC(5)), 0); /* the item went to the next receiver, not to the cancelled one */
    EQ((intptr_t)r2.item, 8);
    EV_EXPECT(1, 2008);
    EQ(weft_chan_len(c), 0);
    weft_chan_free(c);
    return 0;
}

Test(chan, cancelled_blocked_recv_loses_no_item_the_next_receiver_gets_it)
{
    EQ(run(cancel_recv_main, NULL), 0);
}

static intptr_t recv_handed_then_cancelled_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    struct receiver r = {.chan = c, .id = 1, .next_rc = INT_MIN};
    weft_task *t = weft_spawn(receiver_task, &r);
    weft_yield();
    EQ(weft_chan_try_send(c, ITEM(6)), 0); /* handed to the waiting receiver */
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0);
    EQ((intptr_t)r.item, 6);
    EQ(r.next_rc, -ECANCELED);
    EQ(weft_chan_len(c), 0);
    weft_chan_free(c);
    return 0;
}

Test(chan, receiver_cancelled_after_being_handed_an_item_still_gets_it)
{
    EQ(run(recv_handed_then_cancelled_main, NULL), 0);
}

static intptr_t send_handed_then_cancelled_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(0);
    struct sender s = {.chan = c, .item = ITEM(4), .id = 1, .next_rc = INT_MIN};
    weft_task *t = weft_spawn(sender_task, &s);
    weft_yield();
    void *item;
    EQ(weft_chan_try_recv(c, &item), 0); /* taken from the blocked sender */
    EQ((intptr_t)item, 4);
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0); /* its item was delivered: the send succeeded */
    EQ(s.next_rc, -ECANCELED);
    weft_chan_free(c);
    return 0;
}

Test(chan, sender_cancelled_after_its_item_was_taken_still_returns_0)
{
    EQ(run(send_handed_then_cancelled_main, NULL), 0);
}

static intptr_t deadline_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    struct receiver r = {.chan = c, .id = 1, .deadline_in = MS(20)};
    uint64_t t0 = weft_now();
    EQ(weft_join(weft_spawn(receiver_task, &r)), -ETIMEDOUT);
    cr_assert(weft_now() - t0 >= MS(20), "recv timed out before its deadline");
    /* It left the queue: the next item is buffered, not handed to it. */
    EQ(weft_chan_try_send(c, ITEM(1)), 0);
    EQ(weft_chan_len(c), 1);
    struct sender s = {.chan = c, .item = ITEM(2), .id = 2, .deadline_in = MS(20)};
    t0 = weft_now();
    EQ(weft_join(weft_spawn(sender_task, &s)), -ETIMEDOUT);
    cr_assert(weft_now() - t0 >= MS(20), "send timed out before its deadline");
    void *item;
    EQ(weft_chan_try_recv(c, &item), 0);
    EQ((intptr_t)item, 1);
    EQ(weft_chan_try_recv(c, &item), -EAGAIN); /* the timed-out send's item is not there */
    weft_chan_free(c);
    return 0;
}

Test(chan, send_and_recv_past_their_deadline_give_etimedout_and_leave_the_queue)
{
    EQ(run(deadline_main, NULL), 0);
}

/* ---- recv_async ----------------------------------------------------------------------------------- */

struct delayed_send {
    weft_chan *chan;
    void *item;
    uint64_t delay;
};

static intptr_t delayed_send(void *arg)
{
    struct delayed_send *d = arg;
    EQ(weft_sleep(d->delay), 0);
    return weft_chan_send(d->chan, d->item);
}

static intptr_t wait_any_main(void *arg)
{
    (void)arg;
    weft_chan *c1 = weft_chan_new(1), *c2 = weft_chan_new(1);
    weft_future *fs[2] = {weft_chan_recv_async(c1), weft_chan_recv_async(c2)};
    cr_assert(fs[0] && fs[1]);
    struct delayed_send d = {c2, ITEM(77), MS(5)};
    weft_task *t = weft_spawn(delayed_send, &d);
    EQ(weft_wait_any(fs, 2, SEC(5)), 1); /* the second channel fired */
    EQ(weft_await(fs[1]), 77);
    cr_assert(!weft_future_done(fs[0]));
    EQ(weft_join(t), 0);
    /* Still waiting in c1's queue: the next item there is its. */
    uint64_t t0 = weft_now();
    EQ(weft_wait_any(fs, 1, MS(20)), -ETIMEDOUT);
    cr_assert(weft_now() - t0 >= MS(20), "wait_any timed out early");
    EQ(weft_chan_try_send(c1, ITEM(78)), 0);
    EQ(weft_wait_any(fs, 2, SEC(5)), 0);
    EQ(weft_await(fs[0]), 78);
    EQ(weft_chan_len(c1), 0);
    weft_future_free(fs[0]);
    weft_future_free(fs[1]);

    /* Nothing arrives on either: -ETIMEDOUT; the futures freed give up their turns. */
    weft_future *gs[2] = {weft_chan_recv_async(c1), weft_chan_recv_async(c2)};
    t0 = weft_now();
    EQ(weft_wait_any(gs, 2, MS(20)), -ETIMEDOUT);
    cr_assert(weft_now() - t0 >= MS(20), "wait_any timed out early");
    cr_assert(!weft_future_done(gs[0]) && !weft_future_done(gs[1]));
    weft_future_free(gs[0]);
    weft_future_free(gs[1]);
    EQ(weft_chan_try_send(c1, ITEM(79)), 0);
    EQ(weft_chan_len(c1), 1);
    void *item;
    EQ(weft_chan_try_recv(c1, &item), 0);
    EQ((intptr_t)item, 79);
    weft_chan_free(c1);
    weft_chan_free(c2);
    return 0;
}

Test(chan, recv_async_with_wait_any_over_two_channels_reports_which_fired_or_etimedout)
{
    EQ(run(wait_any_main, NULL), 0);
}

static intptr_t recv_async_turn_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(2);
    /* Buffered already: completes at once with the item. */
    EQ(weft_chan_try_send(c, ITEM(3)), 0);
    weft_future *now = weft_chan_recv_async(c);
    cr_assert(weft_future_done(now), "recv_async on a buffered item did not complete at once");
    EQ(weft_await(now), 3);
    weft_future_free(now);
    /* A future and a task queue in that order: items go to them in that order. */
    weft_future *f = weft_chan_recv_async(c);
    struct receiver r = {.chan = c, .id = 1};
    weft_task *t = weft_spawn(receiver_task, &r);
    weft_yield();
    EQ(weft_chan_send(c, ITEM(10)), 0);
    EQ(weft_chan_send(c, ITEM(11)), 0);
    EQ(weft_await(f), 10);
    EQ(weft_join(t), 0);
    EQ((intptr_t)r.item, 11);
    weft_future_free(f);
    weft_chan_free(c);
    return 0;
}

Test(chan, recv_async_takes_its_turn_among_receivers)
{
    EQ(run(recv_async_turn_main, NULL), 0);
}

static intptr_t free_recv_async_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    weft_future *f = weft_chan_recv_async(c); /* first in line */
    struct receiver r = {.chan = c, .id = 1};
    weft_task *t = weft_spawn(receiver_task, &r);
    weft_yield();
    weft_future_free(f); /* gives up its turn */
    EQ(weft_chan_send(c, ITEM(12)), 0);
    EQ(weft_wait_for(t, SEC(5)), 0);
    EQ((intptr_t)r.item, 12);
    EQ(weft_chan_len(c), 0);
    weft_chan_free(c);
    return 0;
}

Test(chan, freeing_a_pending_recv_async_future_gives_its_item_to_the_next_receiver)
{
    EQ(run(free_recv_async_main, NULL), 0);
}

/* ---- a task already cancelled moves no item -------------------------------------------------------- */

static intptr_t cancelled_send_recv(void *arg)
{
    weft_chan *c = arg;
    EQ(weft_cancel(weft_self()), 0);
    void *item = ITEM(-1);
    /* Either would succeed at once, but every suspending call checks the cancel first. */
    EQ(weft_chan_send(c, ITEM(2)), -ECANCELED);
    EQ(weft_chan_recv(c, &item), -ECANCELED);
    EQ((intptr_t)item, -1);
    return 0;
}

static intptr_t cancelled_send_recv_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(2);
    EQ(weft_chan_try_send(c, ITEM(1)), 0);
    EQ(weft_join(weft_spawn(cancelled_send_recv, c)), 0);
    EQ(weft_chan_len(c), 1);
    void *item;
    EQ(weft_chan_try_recv(c, &item), 0);
    EQ((intptr_t)item, 1);
    EQ(weft_chan_try_recv(c, &item), -EAGAIN);
    weft_chan_free(c);
    return 0;
}

Test(chan, cancelled_task_gets_ecanceled_from_send_and_recv_and_moves_no_item)
{
    EQ(run(cancelled_send_recv_main, NULL), 0);
}

static intptr_t free_with_recv_async_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    weft_future *f = weft_chan_recv_async(c);
    cr_assert(f != NULL);
    weft_chan_free(c);
    EQ(weft_await(f), -EPIPE);
    weft_future_free(f); /* after its channel is gone */
    return 0;
}

Test(chan, freeing_a_channel_completes_a_pending_recv_async_with_epipe)
{
    EQ(run(free_with_recv_async_main, NULL), 0);
}

static intptr_t cancel_recv_async_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    weft_future *f = weft_chan_recv_async(c);
    cr_assert(f != NULL);
    EQ(weft_future_cancel(f), 0);
    EQ(weft_await(f), -ECANCELED);
    struct receiver r = {.chan = c, .id = 1};
    weft_task *t = weft_spawn(receiver_task, &r);
    weft_yield();
    EQ(weft_chan_send(c, ITEM(13)), 0);
    /* A future is set once: the item sent after the cancel is not put into it. */
    EQ(weft_await(f), -ECANCELED);
    /* The cancelled future gave up its turn: the item went to the receiver behind it. */
    EQ(weft_wait_for(t, SEC(1)), 0);
    EQ((intptr_t)r.item, 13);
    weft_future_free(f);
    weft_chan_free(c);
    return 0;
}

Test(chan, cancelling_a_pending_recv_async_future_gives_its_item_to_the_next_receiver)
{
    EQ(run(cancel_recv_async_main, NULL), 0);
}

/* ---- property: random cancellations lose and duplicate no item ------------------------------------- */

#define PROP_SENDERS 6
#define PROP_RECEIVERS 5
#define PROP_ITEMS 40 /* per sender */

struct prop_world {
    weft_chan *chan;
    uint32_t rng;
    int send_rc[PROP_SENDERS * PROP_ITEMS]; /* INT_MIN: never attempted */
    int received[PROP_SENDERS * PROP_ITEMS];
};

struct prop_role {
    struct prop_world *w;
    int id;
};

static intptr_t prop_sender(void *arg)
{
    struct prop_role *r = arg;
    for (int i = 0; i < PROP_ITEMS; i++) {
        int k = r->id * PROP_ITEMS + i;
        int rc = weft_chan_send(r->w->chan, ITEM(k + 1));
        r->w->send_rc[k] = rc;
        if (rc < 0)
            return rc; /* cancelled: sticky, it sends nothing more */
        if (next_rand(&r->w->rng) % 3 == 0)
            weft_yield();
    }
    return 0;
}

static intptr_t prop_receiver(void *arg)
{
    struct prop_role *r = arg;
    for (;;) {
        void *item;
        int rc = weft_chan_recv(r->w->chan, &item);
        if (rc < 0)
            return rc;
        r->w->received[(intptr_t)item - 1]++;
        if (next_rand(&r->w->rng) % 2 == 0)
            weft_yield();
    }
}

static intptr_t prop_main(void *arg)
{
    uint32_t seed = (uint32_t)(intptr_t)arg;
    struct prop_world *w = calloc(1, sizeof *w);
    w->rng = seed * 2654435761u + 1;
    static const size_t capacities[] = {0, 1, 3};
    w->chan = weft_chan_new(capacities[seed % 3]);
    for (int k = 0; k < PROP_SENDERS * PROP_ITEMS; k++)
        w->send_rc[k] = INT_MIN;
    struct prop_role ss[PROP_SENDERS], rs[PROP_RECEIVERS];
    weft_task *st[PROP_SENDERS], *rt[PROP_RECEIVERS];
    for (int i = 0; i < PROP_RECEIVERS; i++) {
        rs[i] = (struct prop_role){w, i};
        rt[i] = weft_spawn(prop_receiver, &rs[i]);
    }
    for (int i = 0; i < PROP_SENDERS; i++) {
        ss[i] = (struct prop_role){w, i};
        st[i] = weft_spawn(prop_sender, &ss[i]);
    }
    /* Cancel a few senders and every receiver but the last at random moments. */
    for (int round = 0; round < 12; round++) {
        int turns = (int)(next_rand(&w->rng) % 6);
        for (int y = 0; y < turns; y++)
            weft_yield();
        uint32_t pick = next_rand(&w->rng);
        if (pick % 2)
            weft_cancel(st[pick / 2 % PROP_SENDERS]);
        else
            weft_cancel(rt[pick / 2 % (PROP_RECEIVERS - 1)]);
    }
    for (int i = 0; i < PROP_SENDERS; i++) {
        intptr_t r = weft_join(st[i]);
        cr_assert(r == 0 || r == -ECANCELED, "seed %u: sender %d got %jd", seed, i, (intmax_t)r);
    }
    weft_chan_close(w->chan);
    for (int i = 0; i < PROP_RECEIVERS; i++) {
        intptr_t r = weft_join(rt[i]);
        cr_assert(r == -EPIPE || r == -ECANCELED, "seed %u: receiver %d got %jd", seed, i, (intmax_t)r);
    }
    void *item;
    while (weft_chan_try_recv(w->chan, &item) == 0) /* what cancelled receivers left behind */
        w->received[(intptr_t)item - 1]++;
    for (int k = 0; k < PROP_SENDERS * PROP_ITEMS; k++) {
        int rc = w->send_rc[k];
        cr_assert(rc == INT_MIN || rc == 0 || rc == -ECANCELED, "seed %u: item %d send got %d", seed, k, rc);
        int want = rc == 0 ? 1 : 0;
        cr_assert(w->received[k] == want, "seed %u (capacity %zu): item %d sent with %d, received %d times",
                  seed, capacities[seed % 3], k, rc, w->received[k]);
    }
    weft_chan_free(w->chan);
    free(w);
    return 0;
}

Test(chan, random_cancellations_of_senders_and_receivers_lose_or_duplicate_no_item)
{
    for (intptr_t seed = 1; seed <= 30; seed++)
        EQ(run(prop_main, (void *)seed), 0);
}

/* ---- join and task_done (asyncio.Queue.join) ---------------------------------------------------------- */

struct joiner {
    weft_chan *c;
    int rc;
    bool returned;
};

static intptr_t join_task(void *arg)
{
    struct joiner *j = arg;
    j->rc = weft_chan_join(j->c);
    j->returned = true;
    return j->rc;
}

static intptr_t join_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(2);
    EQ(weft_chan_join(c), 0); /* nothing outstanding: at once */
    EQ(weft_chan_task_done(c), -EINVAL);
    EQ(weft_chan_send(c, ITEM(1)), 0);
    EQ(weft_chan_send(c, ITEM(2)), 0);
    struct joiner j = {.c = c, .rc = INT_MIN};
    weft_task *t = weft_spawn(join_task, &j);
    weft_yield();
    EQ(weft_chan_unfinished(c), 2);
    void *item;
    EQ(weft_chan_recv(c, &item), 0);
    EQ(weft_chan_recv(c, &item), 0);
    settle();
    cr_assert(!j.returned, "join returned while items were taken but not marked done");
    EQ(weft_chan_task_done(c), 0);
    settle();
    cr_assert(!j.returned, "join returned with one item still not done");
    EQ(weft_chan_task_done(c), 0);
    EQ(weft_join(t), 0);
    EQ(weft_chan_task_done(c), -EINVAL); /* more than were sent */
    EQ(weft_chan_unfinished(c), 0);
    weft_chan_free(c);
    return 0;
}

Test(chan, join_waits_until_every_item_sent_is_marked_done_and_extra_task_done_is_einval)
{
    EQ(run(join_main, NULL), 0);
}

/* What counts is what the channel accepted: an item handed straight to a waiting receiver, or taken
 * from a rendezvous sender, counts; a sender still waiting for room does not. */
static intptr_t blocked_sender(void *arg)
{
    return weft_chan_send(arg, ITEM(9));
}

static intptr_t join_counting_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    EQ(weft_chan_try_send(c, ITEM(1)), 0);
    weft_task *s = weft_spawn(blocked_sender, c);
    weft_yield();
    EQ(weft_chan_unfinished(c), 1); /* the blocked sender's item is not in yet */
    void *item;
    EQ(weft_chan_recv(c, &item), 0); /* its item moves into the buffer now */
    EQ(weft_chan_unfinished(c), 2);
    EQ(weft_join(s), 0);
    EQ(weft_chan_try_recv(c, &item), 0);
    weft_chan_free(c);

    c = weft_chan_new(0);
    s = weft_spawn(blocked_sender, c);
    weft_yield();
    EQ(weft_chan_unfinished(c), 0);
    EQ(weft_chan_recv(c, &item), 0);
    EQ(weft_chan_unfinished(c), 1);
    EQ(weft_join(s), 0);
    weft_future *f = weft_chan_recv_async(c);
    EQ(weft_chan_try_send(c, ITEM(3)), 0); /* straight to the future */
    EQ(weft_chan_unfinished(c), 2);
    weft_future_free(f);
    weft_chan_free(c);
    return 0;
}

Test(chan, unfinished_counts_items_the_channel_accepted_not_senders_waiting_for_room)
{
    EQ(run(join_counting_main, NULL), 0);
}

static intptr_t join_interrupt_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    EQ(weft_chan_send(c, ITEM(1)), 0);
    weft_deadline_push(weft_now() + MS(5));
    EQ(weft_chan_join(c), -ETIMEDOUT);
    weft_deadline_pop();
    struct joiner j1 = {.c = c, .rc = INT_MIN}, j2 = {.c = c, .rc = INT_MIN};
    weft_task *t1 = weft_spawn(join_task, &j1);
    weft_task *t2 = weft_spawn(join_task, &j2);
    weft_yield();
    EQ(weft_cancel(t1), 0);
    EQ(weft_join(t1), -ECANCELED);
    EQ(weft_chan_unfinished(c), 1); /* left as it was */
    weft_chan_close(c);
    settle();
    cr_assert(!j2.returned, "closing the channel ended a join");
    weft_chan_free(c);
    EQ(weft_join(t2), -EPIPE);
    EQ(weft_chan_join(NULL), -EINVAL);
    EQ(weft_chan_task_done(NULL), -EINVAL);
    return 0;
}

Test(chan, join_cancelled_or_timed_out_leaves_the_count_close_does_not_end_it_free_gives_epipe)
{
    EQ(run(join_interrupt_main, NULL), 0);
}

static void join_outside_cb(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_new(1);
    EQ(weft_chan_try_send(c, ITEM(1)), 0);
    EQ(weft_chan_join(c), -EPERM);
    EQ(weft_chan_task_done(c), 0); /* does not suspend: fine outside a task */
    weft_chan_free(c);
}

Test(chan, join_outside_a_task_gives_eperm_and_task_done_works_there)
{
    run_in_callback(join_outside_cb, NULL);
}

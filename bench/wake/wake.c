/*
 * How should a worker thread wake a loop parked in io_uring_enter? Two designs, side by side:
 *
 *   eventfd:  the loop keeps a read of an eventfd armed on its ring; the worker write()s the eventfd.
 *   msg_ring: the worker owns a small ring and submits IORING_OP_MSG_RING aimed at the loop's ring,
 *             which posts a CQE there directly.
 *
 * Ping-pong: the loop thread (CPU 0) wakes the worker (CPU 1) through a futex-backed semaphore (the
 * same for both designs), the worker answers through the design under test, the loop waits in
 * io_uring_enter for the CQE. The round trip differs only in the worker-to-loop leg. Also measured:
 * a burst of 64 posts, and how many loop wakeups it costs.
 *
 * Prints bench/report.py JSON sample lines: workload "wake", contenders "eventfd" and "msg_ring".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_OP_MSG_RING
#define IORING_OP_MSG_RING 40
#endif

enum design { EVENTFD, MSG_RING };

typedef struct ctx {
    enum design design;
    struct io_uring loop_ring, worker_ring;
    int efd;
    uint64_t efd_buf;
    sem_t go;
    int posts;           /* per round: 1 (ping-pong) or a burst */
    atomic_int stop;
} ctx;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void arm_eventfd(ctx *c)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->loop_ring);
    io_uring_prep_read(sqe, c->efd, &c->efd_buf, sizeof c->efd_buf, 0);
    io_uring_sqe_set_data64(sqe, 1);
}

static void *worker(void *arg)
{
    ctx *c = arg;
    pin(1);
    for (;;) {
        sem_wait(&c->go);
        if (atomic_load(&c->stop))
            return NULL;
        for (int i = 0; i < c->posts; i++) {
            if (c->design == EVENTFD) {
                uint64_t one = 1;
                if (write(c->efd, &one, sizeof one) != sizeof one)
                    abort();
            } else {
                /* liburing 2.3 has io_uring_prep_msg_ring, but fill it by hand to state the fields. */
                struct io_uring_sqe *sqe = io_uring_get_sqe(&c->worker_ring);
                if (!sqe)
                    abort(); /* one SQE in flight at a time: the ring cannot be full */
                memset(sqe, 0, sizeof *sqe);
                sqe->opcode = IORING_OP_MSG_RING;
                sqe->fd = c->loop_ring.ring_fd;
                sqe->off = 2;  /* user_data of the CQE posted in the loop's ring */
                sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
                io_uring_submit(&c->worker_ring);
            }
        }
    }
}

/* One round: n ping-pongs; returns median-ish mean ns per round trip, and wakeups per burst. */
static double run(ctx *c, int iters, double *wakeups_per_burst)
{
    uint64_t t0 = now_ns();
    uint64_t enters = 0;
    for (int i = 0; i < iters; i++) {
        sem_post(&c->go);
        int seen = 0;
        while (seen < c->posts) {
            struct io_uring_cqe *cqe;
            io_uring_submit_and_wait(&c->loop_ring, 1);
            enters++;
            unsigned head, n = 0;
            io_uring_for_each_cqe(&c->loop_ring, head, cqe)
            {
                n++;
                if (cqe->user_data == 1) {
                    seen += (int)c->efd_buf; /* one read can carry several posts */
                    arm_eventfd(c);
                } else if (cqe->user_data == 2) {
                    seen++;
                }
            }
            io_uring_cq_advance(&c->loop_ring, n);
        }
    }
    double ns = (double)(now_ns() - t0) / iters;
    *wakeups_per_burst = (double)enters / iters;
    return ns;
}

static int setup(ctx *c, enum design d)
{
    memset(c, 0, sizeof *c);
    c->design = d;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(64, &c->loop_ring, &p) < 0)
        return -1;
    if (io_uring_queue_init(64, &c->worker_ring, 0) < 0)
        return -1;
    c->efd = eventfd(0, EFD_CLOEXEC);
    sem_init(&c->go, 0, 0);
    if (d == EVENTFD)
        arm_eventfd(c);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    int iters = argc > 2 ? atoi(argv[2]) : 2000;
    pin(0);
    for (int r = 1; r <= rounds; r++) {
        for (int d = EVENTFD; d <= MSG_RING; d++) {
            const char *name = d == EVENTFD ? "eventfd" : "msg_ring";
            ctx c;
            if (setup(&c, (enum design)d) < 0) {
                printf("{\"type\":\"failure\",\"workload\":\"wake\",\"contender\":\"%s\",\"round\":%d,"
                       "\"reason\":\"ring set-up failed\"}\n", name, r);
                continue;
            }
            pthread_t th;
            pthread_create(&th, NULL, worker, &c);
            double wk;
            c.posts = 1;
            double rtt = run(&c, iters, &wk);
            c.posts = 64;
            double burst = run(&c, iters / 10, &wk);
            atomic_store(&c.stop, 1);
            sem_post(&c.go);
            pthread_join(th, NULL);
            printf("{\"type\":\"sample\",\"workload\":\"wake\",\"contender\":\"%s\",\"round\":%d,"
                   "\"metric\":\"round_trip_ns\",\"unit\":\"ns\",\"value\":%.1f}\n", name, r, rtt);
            printf("{\"type\":\"sample\",\"workload\":\"wake\",\"contender\":\"%s\",\"round\":%d,"
                   "\"metric\":\"burst64_ns\",\"unit\":\"ns\",\"value\":%.1f}\n", name, r, burst);
            printf("{\"type\":\"sample\",\"workload\":\"wake\",\"contender\":\"%s\",\"round\":%d,"
                   "\"metric\":\"enters_per_burst64\",\"unit\":\"calls\",\"value\":%.2f}\n", name, r, wk);
            fflush(stdout);
            io_uring_queue_exit(&c.loop_ring);
            io_uring_queue_exit(&c.worker_ring);
            close(c.efd);
            sem_destroy(&c.go);
        }
    }
    return 0;
}

/*
 * I/O microbenchmarks, printing bench/report.py's JSON sample lines.
 *
 *   io nop [--rounds N] [--quick]
 *       One trip through the ring: weft_nop (submit, park, CQE, resume) against the same NOP on raw
 *       liburing with the same ring set-up (SINGLE_ISSUER|DEFER_TASKRUN, registered ring fd), one
 *       submit-and-wait each, interleaved round by round.
 *
 *   io deadline [--rounds N] [--quick]
 *       What bounding a call by a deadline costs, the way weft does it (a timer in the loop's heap,
 *       armed when the task parks) against the way a linked timeout does it (an IORING_OP_LINK_TIMEOUT
 *       SQE after the request; the kernel arms an hrtimer when the request goes async and posts a
 *       CQE for the timeout too). The request is a recv on a socketpair that has no data until a
 *       send submitted with it: it always goes async. Four contenders interleaved per round: weft
 *       (recv_async + send_async, await both) without and with weft_deadline_push, raw liburing
 *       without and with the linked timeout; metric deadline_ns is each one's difference, per round.
 *
 *   io files --file PATH --qd Q --seconds S --round R [--buffered] [--size BYTES] [--eager] [--fixed]
 *       4 KiB random reads from one task keeping Q reads in flight with weft_read_async; O_DIRECT
 *       unless --buffered. One round per invocation: bench/run interleaves it with fio. --eager runs
 *       the loop with submit_batch 1 and a 200 us idle poll (contender weft-io_uring-eager). --fixed
 *       registers the Q buffers (weft_buffers_register) and reads with weft_read_fixed_async
 *       (contender weft-io_uring-fixed, against fio's fixedbufs). The process's CPU time over the
 *       window (executor threads included) is reported per read.
 *
 *   io mkfile --file PATH --size BYTES
 *       Lays out the test file with random data (skipped when it already has that size).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process, every thread's (the executor's on epoll). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sample(const char *workload, const char *contender, int round, const char *metric, const char *unit,
                   double value, const char *extra)
{
    printf("{\"type\":\"sample\",\"workload\":\"%s\",\"contender\":\"%s\",\"round\":%d,\"metric\":\"%s\","
           "\"unit\":\"%s\",\"value\":%.3f%s}\n",
           workload, contender, round, metric, unit, value, extra ? extra : "");
    fflush(stdout);
}

static void failure(const char *workload, const char *contender, int round, const char *reason)
{
    printf("{\"type\":\"failure\",\"workload\":\"%s\",\"contender\":\"%s\",\"round\":%d,\"reason\":\"%s\"}\n",
           workload, contender, round, reason);
    fflush(stdout);
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* ---- nop ------------------------------------------------------------------------------------- */

static long nop_iters;

static intptr_t weft_nop_task(void *arg)
{
    double *ns = arg;
    for (long i = 0; i < nop_iters / 10; i++)
        weft_nop();
    uint64_t t0 = now_ns();
    for (long i = 0; i < nop_iters; i++)
        if (weft_nop() != 0)
            return -EIO;
    *ns = (double)(now_ns() - t0) / (double)nop_iters;
    return 0;
}

static int raw_nop(double *ns)
{
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(256, &ring, &p);
    if (r < 0) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_COOP_TASKRUN;
        r = io_uring_queue_init_params(256, &ring, &p);
    }
    if (r < 0)
        return r;
    io_uring_register_ring_fd(&ring);
    long total = nop_iters + nop_iters / 10;
    uint64_t t0 = 0;
    for (long i = 0; i < total; i++) {
        if (i == nop_iters / 10)
            t0 = now_ns();
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_nop(sqe);
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&ring, &cqe) == 0)
            io_uring_cqe_seen(&ring, cqe);
    }
    *ns = (double)(now_ns() - t0) / (double)nop_iters;
    io_uring_queue_exit(&ring);
    return 0;
}

/* The number of the first round this invocation runs: BENCH_ROUND (bench/run runs one round per
 * invocation), else 1. */
static int first_round(void)
{
    const char *s = getenv("BENCH_ROUND");
    int v = s ? atoi(s) : 0;
    return v > 0 ? v : 1;
}

static void nop_weft(int r)
{
    double ns = 0;
    weft_config cfg = {.backend = "io_uring"};
    weft_loop *l = weft_loop_new(&cfg);
    intptr_t res = -1;
    if (!l || weft_loop_run(l, weft_nop_task, &ns, &res) != 0 || res != 0)
        failure("nop", "weft", r, "weft_nop failed");
    else
        sample("nop", "weft", r, "ns_per_op", "ns", ns, NULL);
    weft_stats st;
    if (l && weft_loop_stats(l, &st) == 0) {
        char extra[96];
        snprintf(extra, sizeof extra, ",\"syscalls\":%llu", (unsigned long long)st.syscalls);
        sample("nop", "weft", r, "syscalls_per_op", "calls",
               (double)st.syscalls / (double)(nop_iters + nop_iters / 10), extra);
    }
    weft_loop_free(l);
}

static void nop_raw(int r)
{
    double ns = 0;
    if (raw_nop(&ns) < 0)
        failure("nop", "liburing", r, "ring set-up failed");
    else
        sample("nop", "liburing", r, "ns_per_op", "ns", ns, NULL);
}

/* Rounds interleave the two, the one that goes first turning each round. */
static int bench_nop(int rounds)
{
    pin(0);
    for (int r = first_round(), end = r + rounds; r < end; r++) {
        if (r % 2) {
            nop_weft(r);
            nop_raw(r);
        } else {
            nop_raw(r);
            nop_weft(r);
        }
    }
    return 0;
}

/* ---- deadline: loop timers against linked timeouts ----------------------------------------------- */

static long dl_iters;

typedef struct dl_job {
    bool deadline;
    double ns;
    int error;
} dl_job;

static int dl_once(int sv[2], char *buf)
{
    weft_future *r = weft_recv_async(sv[0], buf, 1, 0);
    weft_future *w = weft_send_async(sv[1], "x", 1, 0);
    if (!r || !w)
        return -ENOMEM;
    intptr_t got = weft_await(r), sent = weft_await(w);
    weft_future_free(r);
    weft_future_free(w);
    return got == 1 && sent == 1 ? 0 : -EIO;
}

static intptr_t dl_task(void *arg)
{
    dl_job *job = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return job->error = errno;
    char buf[1];
    if (job->deadline)
        weft_deadline_push(weft_now() + 10 * 1000000000ull); /* never reached: its cost is the point */
    uint64_t t0 = 0;
    for (long i = 0; i < dl_iters + dl_iters / 10 && !job->error; i++) {
        if (i == dl_iters / 10)
            t0 = now_ns();
        job->error = -dl_once(sv, buf);
    }
    job->ns = (double)(now_ns() - t0) / (double)dl_iters;
    if (job->deadline)
        weft_deadline_pop();
    weft_close(sv[0]);
    weft_close(sv[1]);
    return 0;
}

static int dl_raw(bool linked, double *ns)
{
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(64, &ring, &p);
    if (r < 0)
        return r;
    io_uring_register_ring_fd(&ring);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        io_uring_queue_exit(&ring);
        return -errno;
    }
    struct __kernel_timespec ts = {.tv_sec = 10};
    char buf[1];
    unsigned want = linked ? 3 : 2;
    uint64_t t0 = 0;
    for (long i = 0; i < dl_iters + dl_iters / 10; i++) {
        if (i == dl_iters / 10)
            t0 = now_ns();
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_recv(sqe, sv[0], buf, 1, 0);
        if (linked) {
            sqe->flags |= IOSQE_IO_LINK;
            io_uring_prep_link_timeout(io_uring_get_sqe(&ring), &ts, 0);
        }
        io_uring_prep_send(io_uring_get_sqe(&ring), sv[1], "x", 1, 0);
        unsigned seen = 0;
        while (seen < want) {
            io_uring_submit_and_wait(&ring, want - seen);
            struct io_uring_cqe *cqe;
            unsigned head, n = 0;
            io_uring_for_each_cqe(&ring, head, cqe) n++;
            io_uring_cq_advance(&ring, n);
            seen += n;
        }
    }
    *ns = (double)(now_ns() - t0) / (double)dl_iters;
    close(sv[0]);
    close(sv[1]);
    io_uring_queue_exit(&ring);
    return 0;
}

/* Four contenders per round, in an order that turns by one each round: weft without and with a deadline,
 * raw liburing without and with a linked timeout. */
static int bench_deadline(int rounds)
{
    pin(0);
    static const char *const names[4] = {"weft", "weft-deadline", "liburing", "liburing-linked"};
    for (int r = first_round(), end = r + rounds; r < end; r++) {
        double ns[4] = {0, 0, 0, 0};
        bool ok[4] = {false, false, false, false};
        for (int k = 0; k < 4; k++) {
            int c = (k + r - 1) % 4;
            bool deadline = c == 1 || c == 3;
            if (c < 2) {
                weft_config cfg = {.backend = "io_uring"};
                weft_loop *l = weft_loop_new(&cfg);
                dl_job job = {.deadline = deadline};
                intptr_t res = -1;
                if (!l || weft_loop_run(l, dl_task, &job, &res) != 0 || res != 0 || job.error)
                    failure("deadline", names[c], r, job.error ? strerror(job.error) : "loop failed");
                else
                    sample("deadline", names[c], r, "ns_per_op", "ns", ns[c] = job.ns, NULL), ok[c] = true;
                weft_loop_free(l);
            } else {
                int e = dl_raw(deadline, &ns[c]);
                if (e < 0)
                    failure("deadline", names[c], r, strerror(-e));
                else
                    sample("deadline", names[c], r, "ns_per_op", "ns", ns[c], NULL), ok[c] = true;
            }
        }
        if (ok[0] && ok[1])
            sample("deadline", "weft-deadline", r, "deadline_ns", "ns", ns[1] - ns[0], NULL);
        if (ok[2] && ok[3])
            sample("deadline", "liburing-linked", r, "deadline_ns", "ns", ns[3] - ns[2], NULL);
    }
    return 0;
}

/* ---- random file reads ------------------------------------------------------------------------- */

typedef struct file_job {
    int fd;
    int qd;
    bool fixed; /* through registered buffers, one a slot */
    uint64_t blocks;
    double seconds; /* may be fractional */
    uint64_t reads;
    double elapsed;
    uint64_t cpu_ns; /* the process's CPU time over the window */
    int error;
} file_job;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    /* xorshift64*: cheap, and random enough to defeat read-ahead. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/*
 * Keeps qd reads in flight from one task, as fio does: each read's completion queues its slot (a
 * callback), and the task refills every queued slot in the turn the completions arrived, so the depth
 * never waits on one slow read.
 */
typedef struct file_ring {
    weft_event *ready;
    int *done;          /* slots whose read completed, in completion order */
    size_t head, tail;  /* done[head % qd .. tail % qd) */
    int qd;
} file_ring;

typedef struct file_slot {
    file_ring *ring;
    int index;
} file_slot;

static void read_done(weft_future *f, void *arg)
{
    (void)f;
    file_slot *s = arg;
    file_ring *q = s->ring;
    q->done[q->tail++ % (size_t)q->qd] = s->index;
    weft_event_set(q->ready);
}

static weft_future *file_read(file_job *job, char *buf, file_slot *slot)
{
    int64_t off = (int64_t)(rng() % job->blocks) * 4096;
    weft_future *f = job->fixed ? weft_read_fixed_async(job->fd, buf, 4096, off, (unsigned)slot->index)
                                : weft_read_async(job->fd, buf, 4096, off);
    if (f && weft_future_on_done(f, read_done, slot) != 0) {
        weft_future_free(f);
        f = NULL;
    }
    return f;
}

static intptr_t file_task(void *arg)
{
    file_job *job = arg;
    int qd = job->qd;
    char *bufs = NULL;
    weft_future **slots = calloc((size_t)qd, sizeof *slots);
    file_slot *meta = calloc((size_t)qd, sizeof *meta);
    file_ring q = {.ready = weft_event_new(), .done = calloc((size_t)qd, sizeof(int)), .qd = qd};
    if (posix_memalign((void **)&bufs, 4096, (size_t)qd * 4096) != 0 || !slots || !meta || !q.ready || !q.done) {
        job->error = ENOMEM;
        goto out;
    }
    if (job->fixed) {
        struct iovec *set = calloc((size_t)qd, sizeof *set);
        int r = set ? 0 : -ENOMEM;
        for (int i = 0; set && i < qd; i++)
            set[i] = (struct iovec){bufs + (size_t)i * 4096, 4096};
        if (set)
            r = weft_buffers_register(set, (unsigned)qd);
        free(set);
        if (r < 0) {
            job->error = -r;
            goto out;
        }
    }
    int inflight = 0;
    for (int i = 0; i < qd; i++) {
        meta[i] = (file_slot){.ring = &q, .index = i};
        if (!(slots[i] = file_read(job, bufs + (size_t)i * 4096, &meta[i]))) {
            job->error = ENOMEM;
            break;
        }
        inflight++;
    }
    uint64_t start = now_ns(), stop = start + (uint64_t)(job->seconds * 1e9);
    uint64_t cpu0 = cpu_ns();
    uint64_t reads = 0;
    bool stopping = job->error != 0;
    while (inflight) {
        if (q.head == q.tail) {
            weft_event_clear(q.ready);
            weft_event_wait(q.ready);
            continue;
        }
        if (!stopping && now_ns() >= stop)
            stopping = true;
        while (q.head != q.tail) {
            int i = q.done[q.head++ % (size_t)qd];
            intptr_t r = weft_await(slots[i]);
            weft_future_free(slots[i]);
            slots[i] = NULL;
            inflight--;
            if (r != 4096) {
                if (!job->error)
                    job->error = r < 0 ? (int)-r : EIO;
                stopping = true;
                continue;
            }
            reads++;
            if (!stopping) {
                if ((slots[i] = file_read(job, bufs + (size_t)i * 4096, &meta[i])))
                    inflight++;
                else
                    job->error = ENOMEM, stopping = true;
            }
        }
    }
    job->elapsed = (double)(now_ns() - start) / 1e9;
    job->cpu_ns = cpu_ns() - cpu0;
    job->reads = reads;
out:
    weft_event_free(q.ready);
    free(q.done);
    free(meta);
    free(slots);
    free(bufs);
    return 0;
}

static int bench_files(const char *path, int qd, double seconds, int round, bool buffered, bool eager, bool fixed)
{
    pin(0);
    const char *workload = buffered ? "files-buffered" : "files";
    char contender[64];
    snprintf(contender, sizeof contender, "weft-%s%s%s-qd%d", getenv("WEFT_BACKEND") ? getenv("WEFT_BACKEND") : "io_uring",
             eager ? "-eager" : "", fixed ? "-fixed" : "", qd);
    int fd = open(path, O_RDONLY | (buffered ? 0 : O_DIRECT));
    if (fd < 0) {
        failure(workload, contender, round, strerror(errno));
        return 0;
    }
    /* A file's or a block device's size (st_size is 0 for a device). */
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 4096) {
        failure(workload, contender, round, size < 0 ? strerror(errno) : "smaller than one 4 KiB block");
        close(fd);
        return 0;
    }
    file_job job = {.fd = fd, .qd = qd, .fixed = fixed, .blocks = (uint64_t)size / 4096, .seconds = seconds};
    rng_state ^= (uint64_t)round * 0x100000001b3ull ^ now_ns();
    intptr_t res = -1;
    weft_config cfg = {.submit_batch = eager ? 1 : 0, .idle_poll_ns = eager ? 200000 : 0};
    weft_loop *l = weft_loop_new(&cfg);
    weft_stats s = {0};
    if (!l || weft_loop_run(l, file_task, &job, &res) != 0 || res != 0 || job.error) {
        failure(workload, contender, round, job.error ? strerror(job.error) : "loop failed");
    } else {
        weft_loop_stats(l, &s);
        char extra[200];
        double reads = (double)(job.reads ? job.reads : 1);
        snprintf(extra, sizeof extra, ",\"qd\":%d,\"reads\":%llu,\"syscalls_per_read\":%.3f,\"cpu_us_per_read\":%.3f",
                 qd, (unsigned long long)job.reads, (double)s.syscalls / reads, (double)job.cpu_ns / 1e3 / reads);
        sample(workload, contender, round, "iops", "IOPS", (double)job.reads / job.elapsed, extra);
    }
    weft_loop_free(l);
    close(fd);
    return 0;
}

static int make_file(const char *path, uint64_t size)
{
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size == size)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -errno;
    enum { CHUNK = 1 << 20 };
    uint64_t *buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    for (uint64_t done = 0; done < size; done += CHUNK) {
        for (size_t i = 0; i < CHUNK / 8; i++)
            buf[i] = rng();
        if (write(fd, buf, CHUNK) != CHUNK) {
            free(buf);
            close(fd);
            return -EIO;
        }
    }
    free(buf);
    fsync(fd);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: io nop [--rounds N] [--quick] | io files --file PATH --qd Q --seconds S --round R "
                        "[--buffered] [--eager] [--fixed] | io mkfile --file PATH --size BYTES\n");
        return 2;
    }
    int rounds = 7, qd = 32, round = 1;
    uint64_t size = 1ull << 30;
    double seconds = 5;
    const char *path = NULL;
    bool buffered = false, quick = false, eager = false, fixed = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--file") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--qd") && i + 1 < argc)
            qd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--round") && i + 1 < argc)
            round = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--buffered"))
            buffered = true;
        else if (!strcmp(argv[i], "--eager"))
            eager = true;
        else if (!strcmp(argv[i], "--fixed"))
            fixed = true;
    }
    if (!strcmp(argv[1], "nop")) {
        nop_iters = quick ? 200000 : 1000000;
        return bench_nop(rounds);
    }
    if (!strcmp(argv[1], "deadline")) {
        dl_iters = quick ? 40000 : 150000;
        return bench_deadline(rounds);
    }
    if (!path || qd < 1) {
        fprintf(stderr, "io: --file is required, --qd must be >= 1\n");
        return 2;
    }
    if (!strcmp(argv[1], "mkfile")) {
        int r = make_file(path, size);
        if (r < 0)
            fprintf(stderr, "io mkfile: %s\n", strerror(-r));
        return r < 0;
    }
    if (!strcmp(argv[1], "files"))
        return bench_files(path, qd, seconds, round, buffered, eager, fixed);
    fprintf(stderr, "io: unknown workload %s\n", argv[1]);
    return 2;
}

/*
 * commit_pthread — examples/group_commit.c without a runtime: the same group commit with a thread per
 * writer, a mutex and condition variables, what a careful engineer writes with pthreads.
 *
 *   commit_pthread [--writers 64] [--records 100] [--size 128] [--json] FILE
 *
 * Each writer thread appends a record to the log's pending buffer under the mutex, wakes the committer
 * and waits on its batch's condition variable. The committer thread takes whatever is pending, writes
 * it at the log's end with pwrite and fdatasync outside the lock, and wakes that batch's writers;
 * records appended meanwhile gather for the next batch. Records, the check of the log and the output
 * are examples/log_record.h's, as group_commit's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_record.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <time.h>

static const char *prog = "commit_pthread";

typedef struct batch {
    pthread_cond_t durable;
    bool done;
    int result;
    unsigned waiters;
} batch;

static struct log {
    unsigned writers, records;
    size_t size;
    bool json;
    int fd;
    int64_t end;
    struct log_buffers buf;
    batch *open;
    pthread_mutex_t lock;
    pthread_cond_t work;
    bool closing;
    uint64_t syncs;
    uint64_t *latency;
} lg = {.writers = 64, .records = 100, .size = 128, .lock = PTHREAD_MUTEX_INITIALIZER,
        .work = PTHREAD_COND_INITIALIZER};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static batch *batch_new(void)
{
    batch *b = calloc(1, sizeof *b);
    if (b)
        pthread_cond_init(&b->durable, NULL);
    return b;
}

/* Under lg.lock. */
static void batch_release(batch *b)
{
    if (--b->waiters == 0 && b != lg.open) {
        pthread_cond_destroy(&b->durable);
        free(b);
    }
}

static void *committer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lg.lock);
    for (;;) {
        while (!lg.buf.pending_len && !lg.closing)
            pthread_cond_wait(&lg.work, &lg.lock);
        if (!lg.buf.pending_len)
            break;
        size_t len = log_take(&lg.buf);
        batch *b = lg.open;
        lg.open = batch_new();
        int64_t at = lg.end;
        pthread_mutex_unlock(&lg.lock);

        ssize_t n = pwrite(lg.fd, lg.buf.writing, len, at);
        int result = n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
        if (!result && fdatasync(lg.fd) != 0)
            result = -errno;

        pthread_mutex_lock(&lg.lock);
        lg.syncs++;
        lg.end += n > 0 ? n : 0;
        b->result = result;
        b->done = true;
        pthread_cond_broadcast(&b->durable);
        if (!lg.open) {
            pthread_mutex_unlock(&lg.lock);
            return (void *)(intptr_t)-ENOMEM;
        }
    }
    pthread_mutex_unlock(&lg.lock);
    return NULL;
}

static void *writer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    unsigned char *rec = malloc(lg.size);
    intptr_t result = rec ? 0 : -ENOMEM;
    for (uint32_t seq = 0; seq < lg.records && !result; seq++) {
        log_record_make(rec, lg.size, id, seq);
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&lg.lock);
        log_append(&lg.buf, rec, lg.size);
        batch *b = lg.open;
        b->waiters++;
        pthread_cond_signal(&lg.work);
        while (!b->done)
            pthread_cond_wait(&b->durable, &lg.lock);
        result = b->result;
        batch_release(b);
        pthread_mutex_unlock(&lg.lock);
        lg.latency[(size_t)id * lg.records + seq] = now_ns() - t0;
    }
    free(rec);
    return (void *)result;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"writers", required_argument, NULL, 'w'}, {"records", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 's'},    {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'w': lg.writers = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': lg.records = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': lg.size = strtoul(optarg, NULL, 10); break;
        case 'j': lg.json = true; break;
        default: optind = argc + 1; break;
        }
    }
    if (optind != argc - 1 || !lg.writers || lg.writers > 100000 || !lg.records || lg.size < LOG_RECORD_MIN ||
        lg.size > (1u << 20)) {
        fprintf(stderr, "usage: %s [--writers N] [--records M] [--size BYTES (>= %d)] [--json] FILE\n", prog,
                LOG_RECORD_MIN);
        return 2;
    }
    lg.fd = open(argv[optind], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (lg.fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, argv[optind], strerror(errno));
        return 1;
    }
    int nomem = log_buffers_init(&lg.buf, lg.writers, lg.size);
    lg.latency = calloc((size_t)lg.writers * lg.records, sizeof *lg.latency);
    lg.open = batch_new();
    pthread_t *ts = calloc(lg.writers, sizeof *ts), c;
    if (nomem || !lg.latency || !lg.open || !ts) {
        fprintf(stderr, "%s: no memory\n", prog);
        return 1;
    }
    /* Small stacks: thousands of writers must fit. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    if (pthread_create(&c, NULL, committer, NULL) != 0) {
        fprintf(stderr, "%s: pthread_create failed\n", prog);
        return 1;
    }
    uint64_t t0 = now_ns(), cpu0 = log_cpu_ns();
    for (unsigned i = 0; i < lg.writers; i++) {
        int r = pthread_create(&ts[i], &attr, writer, (void *)(uintptr_t)i);
        if (r != 0) {
            fprintf(stderr, "%s: pthread_create of writer %u: %s\n", prog, i, strerror(r));
            return 1;
        }
    }
    intptr_t failed = 0;
    for (unsigned i = 0; i < lg.writers; i++) {
        void *r;
        pthread_join(ts[i], &r);
        if ((intptr_t)r < 0 && !failed)
            failed = (intptr_t)r;
    }
    uint64_t elapsed = now_ns() - t0, cpu = log_cpu_ns() - cpu0;
    pthread_mutex_lock(&lg.lock);
    lg.closing = true;
    pthread_cond_signal(&lg.work);
    pthread_mutex_unlock(&lg.lock);
    void *cr;
    pthread_join(c, &cr);
    if (failed || (intptr_t)cr < 0) {
        fprintf(stderr, "%s: %s\n", prog, strerror((int)-(failed ? failed : (intptr_t)cr)));
        return 1;
    }
    log_report("pthread group commit", lg.writers, lg.records, lg.size, lg.syncs, elapsed, cpu, lg.latency, lg.json);
    if (log_verify(lg.fd, lg.writers, lg.records, lg.size, prog) < 0)
        return 1;
    if (!lg.json)
        printf("verify: every record once, intact, in order\n");
    close(lg.fd);
    return 0;
}

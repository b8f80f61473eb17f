/*
 * The records of examples/group_commit.c and of its pthread counterpart (bench/baselines/
 * commit_pthread.c): how a record is made, how the log is checked afterwards, and the line (or JSON
 * object) both print, so the two differ only in how they get the records to the disk.
 *
 * A record is size bytes: its writer, its number among that writer's records, then bytes that follow
 * from those two, so a record torn, mixed with another or written twice shows when the log is read
 * back.
 */
#ifndef WEFT_EXAMPLE_LOG_RECORD_H
#define WEFT_EXAMPLE_LOG_RECORD_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define LOG_RECORD_MIN 16 /* the writer and number, and at least 8 bytes that follow from them */

static inline void log_record_make(unsigned char *rec, size_t size, uint32_t writer, uint32_t seq)
{
    memcpy(rec, &writer, 4);
    memcpy(rec + 4, &seq, 4);
    uint32_t x = writer * 2654435761u ^ (seq + 1) * 40503u ^ 0x9e3779b9u;
    for (size_t i = 8; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        rec[i] = (unsigned char)(x >> 24);
    }
}

/*
 * Reads the log at fd back and checks it holds writers x records records of size bytes, each intact,
 * each exactly once, every writer's in the order it wrote them. 0, or -1 with what is wrong on stderr.
 */
static inline int log_verify(int fd, unsigned writers, unsigned records, size_t size, const char *prog)
{
    size_t total = (size_t)writers * records * size;
    unsigned char *log = malloc(total ? total : 1), *want = malloc(size);
    uint32_t *next = calloc(writers, sizeof *next);
    if (!log || !want || !next) {
        fprintf(stderr, "%s: verify: no memory\n", prog);
        free(log), free(want), free(next);
        return -1;
    }
    int bad = 0;
    ssize_t got = pread(fd, log, total, 0);
    char extra;
    if (got != (ssize_t)total || pread(fd, &extra, 1, (off_t)total) != 0) {
        fprintf(stderr, "%s: verify: the log is not %zu bytes (read %zd)\n", prog, total, got);
        bad = -1;
    }
    for (size_t at = 0; !bad && at < total; at += size) {
        uint32_t writer, seq;
        memcpy(&writer, log + at, 4);
        memcpy(&seq, log + at + 4, 4);
        if (writer >= writers || seq != next[writer]) {
            fprintf(stderr, "%s: verify: at byte %zu, record %u of writer %u (wanted its record %u)\n", prog, at,
                    seq, writer, writer < writers ? next[writer] : 0);
            bad = -1;
            break;
        }
        log_record_make(want, size, writer, seq);
        if (memcmp(want, log + at, size) != 0) {
            fprintf(stderr, "%s: verify: record %u of writer %u at byte %zu is damaged\n", prog, seq, writer, at);
            bad = -1;
        }
        next[writer]++;
    }
    free(log);
    free(want);
    free(next);
    return bad;
}

/*
 * The two buffers of a group commit: records are appended to pending while the committer writes the
 * other one. Each holds one record of every writer at most (a writer appends its next record only
 * once the last is durable), which bounds both.
 */
struct log_buffers {
    unsigned char *pending, *writing;
    size_t pending_len;
};

static inline int log_buffers_init(struct log_buffers *lb, unsigned writers, size_t size)
{
    lb->pending = malloc((size_t)writers * size);
    lb->writing = malloc((size_t)writers * size);
    lb->pending_len = 0;
    return lb->pending && lb->writing ? 0 : -ENOMEM;
}

static inline void log_buffers_fini(struct log_buffers *lb)
{
    free(lb->pending);
    free(lb->writing);
}

static inline void log_append(struct log_buffers *lb, const unsigned char *rec, size_t size)
{
    memcpy(lb->pending + lb->pending_len, rec, size);
    lb->pending_len += size;
}

/* The committer takes what is pending (returns its length, in lb->writing); what is appended next
 * gathers in the other buffer. */
static inline size_t log_take(struct log_buffers *lb)
{
    unsigned char *swap = lb->writing;
    lb->writing = lb->pending;
    lb->pending = swap;
    size_t len = lb->pending_len;
    lb->pending_len = 0;
    return len;
}

static int log_compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The process's CPU time so far (every thread's, the kernel's workers of io_uring among them). */
static inline uint64_t log_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/*
 * Prints the run: records, syncs, time, and each record's latency (append to durable, ns, sorted in
 * place here) at p50 and p99; as one JSON object with json.
 */
static inline void log_report(const char *what, unsigned writers, unsigned records, size_t size, uint64_t syncs,
                              uint64_t elapsed_ns, uint64_t cpu_ns, uint64_t *latency, bool json)
{
    size_t n = (size_t)writers * records;
    qsort(latency, n, sizeof *latency, log_compare_u64);
    double secs = (double)elapsed_ns / 1e9, p50 = (double)latency[n / 2] / 1e3,
           p99 = (double)latency[n * 99 / 100] / 1e3;
    if (json) {
        printf("{\"records\":%zu,\"writers\":%u,\"size\":%zu,\"syncs\":%llu,\"seconds\":%.6f,\"records_per_s\":%.1f,"
               "\"syncs_per_record\":%.5f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"cpu_us_per_record\":%.3f}\n",
               n, writers, size, (unsigned long long)syncs, secs, (double)n / secs, (double)syncs / (double)n, p50,
               p99, (double)cpu_ns / 1e3 / (double)n);
    } else {
        printf("%s: %zu records of %zu B from %u writers in %.1f ms: %.0f records/s, %llu syncs (%.3f a record, "
               "%.1f records a sync), latency p50 %.2f ms p99 %.2f ms, CPU %.1f us a record\n",
               what, n, size, writers, secs * 1e3, (double)n / secs, (unsigned long long)syncs,
               (double)syncs / (double)n, (double)n / (double)(syncs ? syncs : 1), p50 / 1e3, p99 / 1e3,
               (double)cpu_ns / 1e3 / (double)n);
    }
    fflush(stdout);
}

#endif /* WEFT_EXAMPLE_LOG_RECORD_H */

/*
 * Files through the backend: openat, read/write at an offset and at the file position, readv/writev,
 * fsync, statx, renameat, unlinkat, mkdirat, many reads in flight from one task, and the _async
 * futures freed after or before completion. On io_uring every call is one request and no executor
 * thread is involved; on epoll they run on the executor, which weft_stats.offloaded_ops shows.
 *
 * Each test works in a fresh directory from mkdtemp, removed at its end.
 */
#include <limits.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "common.h"

TestSuite(fs, .timeout = 30);

/* ---- a scratch directory per test ------------------------------------------------------------------ */

static char scratch[PATH_MAX];

static void scratch_remove(void)
{
    if (scratch[0])
        remove_tree(scratch);
    scratch[0] = '\0';
}

static void scratch_make(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/weft-fs-XXXXXX", base && *base ? base : "/tmp");
    cr_assert(mkdtemp(scratch) != NULL, "mkdtemp(%s): %s", scratch, strerror(errno));
    atexit(scratch_remove); /* also when an assertion ends the test early */
}

static const char *loop_backend; /* of the loop running the scenario */

/* Runs fn with a scratch directory fd as its argument on a default loop, under a deadline; removes
 * the directory. */
static intptr_t run_in_scratch_with(weft_fn fn, const weft_config *cfg)
{
    scratch_make();
    int dfd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert(dfd >= 0, "open %s: %s", scratch, strerror(errno));
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l, "weft_loop_new: %s", strerror(errno));
    loop_backend = weft_loop_backend(l);
    struct guarded g = {fn, (void *)(intptr_t)dfd};
    intptr_t result = INTPTR_MIN;
    EQ(weft_loop_run(l, guarded_main, &g, &result), 0);
    weft_loop_free(l);
    close(dfd);
    scratch_remove();
    return result;
}

static intptr_t run_in_scratch(weft_fn fn)
{
    return run_in_scratch_with(fn, NULL);
}

static bool on_io_uring(void)
{
    return strcmp(loop_backend, "io_uring") == 0;
}

static uint64_t offloaded_now(void)
{
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    return st.offloaded_ops;
}

/* Asserts what the backend promises about file calls run since `before`: at least `calls` of them
 * went to the executor on epoll; none did on io_uring. */
static void offloaded_since(uint64_t before, uint64_t calls)
{
    uint64_t grown = offloaded_now() - before;
    if (on_io_uring())
        cr_assert(grown == 0, "io_uring ran %" PRIu64 " file calls on the executor", grown);
    else
        cr_assert(grown >= calls, "epoll ran %" PRIu64 " of %" PRIu64 " file calls on the executor", grown, calls);
}

static int open_new(int dfd, const char *name, mode_t mode)
{
    int fd = weft_openat(dfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, mode);
    cr_assert(fd >= 0, "weft_openat(%s, O_CREAT): %d (%s)", name, fd, res_name(fd));
    return fd;
}

/* ---- openat ------------------------------------------------------------------------------------------- */

static intptr_t openat_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    uint64_t before = offloaded_now();
    EQ(weft_openat(dfd, "missing", O_RDONLY | O_CLOEXEC, 0), -ENOENT);
    EQ(weft_openat(dfd, "no-dir/file", O_CREAT | O_RDWR, 0600), -ENOENT);
    int fd = open_new(dfd, "created", 0600);
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC not applied");
    EQ(weft_openat(dfd, "created", O_CREAT | O_EXCL | O_RDWR, 0600), -EEXIST);
    EQ(weft_write(fd, "data", 4, 0), 4);
    EQ(weft_close(fd), 0);

    /* An absolute path with AT_FDCWD; a read-only fd refuses writes; a directory refuses reads. */
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/created", scratch);
    fd = weft_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    cr_assert(fd >= 0, "weft_openat(%s): %d (%s)", path, fd, res_name(fd));
    char buf[8] = {0};
    EQ(weft_read(fd, buf, sizeof buf, 0), 4);
    cr_assert(memcmp(buf, "data", 4) == 0);
    EQ(weft_write(fd, "x", 1, 0), -EBADF);
    EQ(weft_close(fd), 0);
    int dir = weft_openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    cr_assert(dir >= 0);
    EQ(weft_read(dir, buf, sizeof buf, 0), -EISDIR);
    EQ(weft_close(dir), 0);
    offloaded_since(before, 9);
    return 0;
}

Test(fs, openat_creates_with_o_creat_and_reports_enoent_eexist_ebadf_eisdir)
{
    EQ(run_in_scratch(openat_main), 0);
}

/* ---- 1 MiB written, synced, and read back by 128 reads in flight ------------------------------------ */

enum { FILE_BYTES = 1 << 20, READS = 128, CHUNK = FILE_BYTES / READS };

static intptr_t big_file_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    uint64_t before = offloaded_now();
    unsigned char *data = malloc(FILE_BYTES), *back = malloc(FILE_BYTES);
    cr_assert(data && back);
    fill_pattern(data, FILE_BYTES, 7);
    int fd = open_new(dfd, "big", 0600);
    size_t done = 0;
    while (done < FILE_BYTES) {
        ssize_t n = weft_write(fd, data + done, FILE_BYTES - done, (int64_t)done);
        cr_assert(n > 0, "weft_write at %zu: %zd (%s)", done, n, res_name(n));
        done += (size_t)n;
    }
    EQ(weft_fsync(fd, false), 0);
    EQ(weft_fsync(fd, true), 0);

    /* 128 chunk reads in flight at once, issued in a shuffled order of offsets. */
    unsigned order[READS];
    for (unsigned i = 0; i < READS; i++)
        order[i] = i;
    uint32_t s = 12345;
    for (unsigned i = READS - 1; i > 0; i--) {
        unsigned j = xorshift(&s) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    memset(back, 0, FILE_BYTES);
    weft_future *fs[READS];
    for (unsigned i = 0; i < READS; i++) {
        size_t off = (size_t)order[i] * CHUNK;
        fs[i] = weft_read_async(fd, back + off, CHUNK, (int64_t)off);
        cr_assert(fs[i], "weft_read_async %u: %s", i, strerror(errno));
    }
    gather_each(fs, READS, CHUNK);
    same_bytes(back, data, FILE_BYTES, "1 MiB read back in 128 chunks");

    /* Unaligned reads of random lengths, some running past the end of the file: short there. */
    unsigned char *bufs = malloc((size_t)READS * 10000);
    cr_assert(bufs);
    size_t offs[READS], lens[READS];
    for (unsigned i = 0; i < READS; i++) {
        offs[i] = i < 8 ? FILE_BYTES - 1 - xorshift(&s) % 5000 : xorshift(&s) % FILE_BYTES;
        lens[i] = 1 + xorshift(&s) % 10000;
        fs[i] = weft_read_async(fd, bufs + (size_t)i * 10000, lens[i], (int64_t)offs[i]);
        cr_assert(fs[i]);
    }
    intptr_t results[READS];
    EQ(weft_gather(fs, READS, results), 0);
    for (unsigned i = 0; i < READS; i++) {
        size_t want = offs[i] + lens[i] > FILE_BYTES ? FILE_BYTES - offs[i] : lens[i];
        cr_assert(results[i] == (intptr_t)want, "read %u of %zu at %zu: got %jd, want %zu", i, lens[i], offs[i],
                  (intmax_t)results[i], want);
        same_bytes(bufs + (size_t)i * 10000, data + offs[i], want, "an unaligned read");
        weft_future_free(fs[i]);
    }
    char one;
    EQ(weft_read(fd, &one, 1, FILE_BYTES), 0); /* at the end: 0 */
    EQ(weft_close(fd), 0);
    free(bufs);
    free(data);
    free(back);
    offloaded_since(before, 1 + 1 + 2 + 2 * READS);
    return 0;
}

Test(fs, a_1mib_file_written_synced_and_read_back_by_128_reads_in_flight_is_byte_exact)
{
    EQ(run_in_scratch(big_file_main), 0);
}

/* ---- offset -1: the file position ------------------------------------------------------------------------ */

static intptr_t position_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "pos", 0600);
    EQ(weft_write(fd, "abc", 3, -1), 3);
    EQ(weft_write(fd, "defg", 4, -1), 4); /* continues after the first */
    EQ(lseek(fd, 0, SEEK_CUR), 7);
    EQ(lseek(fd, 0, SEEK_SET), 0);
    char buf[8] = {0};
    EQ(weft_read(fd, buf, 2, -1), 2);
    cr_assert(memcmp(buf, "ab", 2) == 0);
    EQ(weft_read(fd, buf, 3, -1), 3); /* the second read continues where the first stopped */
    cr_assert(memcmp(buf, "cde", 3) == 0);
    EQ(weft_read(fd, buf, 1, 0), 1); /* an explicit offset neither uses nor moves the position */
    EQ(buf[0], 'a');
    EQ(weft_read(fd, buf, 8, -1), 2);
    cr_assert(memcmp(buf, "fg", 2) == 0);
    EQ(weft_read(fd, buf, 8, -1), 0); /* at the end */
    EQ(weft_write(fd, "X", 1, 1), 1); /* pwrite leaves the position at the end */
    EQ(lseek(fd, 0, SEEK_CUR), 7);
    EQ(weft_read(fd, buf, 7, 0), 7);
    cr_assert(memcmp(buf, "aXcdefg", 7) == 0);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, offset_minus_1_reads_and_writes_at_the_file_position_and_advances_it)
{
    EQ(run_in_scratch(position_main), 0);
}

/* ---- readv / writev ------------------------------------------------------------------------------------- */

static intptr_t vector_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "vec", 0600);
    char a[] = "first-", b[] = "second-", c[] = "third";
    struct iovec out[3] = {{a, 6}, {b, 7}, {c, 5}};
    EQ(weft_writev(fd, out, 3, 10), 18);
    EQ(lseek(fd, 0, SEEK_CUR), 0); /* at an offset: the position did not move */

    char w[3], x[5], y[4], z[20];
    memset(z, 0, sizeof z);
    struct iovec in[4] = {{w, 3}, {x, 5}, {y, 4}, {z, sizeof z}};
    EQ(weft_readv(fd, in, 4, 10), 18);
    cr_assert(memcmp(w, "fir", 3) == 0 && memcmp(x, "st-se", 5) == 0 && memcmp(y, "cond", 4) == 0 &&
                  memcmp(z, "-third", 6) == 0,
              "readv scattered wrongly: %.3s|%.5s|%.4s|%.6s", w, x, y, z);

    /* The first 10 bytes are a hole: zeros. */
    char hole[10];
    memset(hole, 'h', sizeof hole);
    struct iovec hv[2] = {{hole, 4}, {hole + 4, 6}};
    EQ(weft_readv(fd, hv, 2, 0), 10);
    for (int i = 0; i < 10; i++)
        EQ(hole[i], 0);

    /* At the file position (offset -1): appended after a seek to the end, read after a seek back. */
    EQ(lseek(fd, 0, SEEK_END), 28);
    EQ(weft_writev(fd, out, 3, -1), 18);
    EQ(lseek(fd, 0, SEEK_CUR), 46);
    EQ(lseek(fd, 28, SEEK_SET), 28);
    memset(z, 0, sizeof z);
    EQ(weft_readv(fd, in, 4, -1), 18);
    cr_assert(memcmp(w, "fir", 3) == 0 && memcmp(z, "-third", 6) == 0);
    EQ(lseek(fd, 0, SEEK_CUR), 46);

    EQ(weft_readv(fd, in, -1, 0), -EINVAL);
    EQ(weft_writev(fd, out, -1, 0), -EINVAL);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, readv_and_writev_scatter_and_gather_several_iovecs_at_an_offset_or_the_position)
{
    EQ(run_in_scratch(vector_main), 0);
}

/* ---- statx ------------------------------------------------------------------------------------------- */

static intptr_t statx_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "sized", 0640);
    static char block[12345];
    memset(block, 's', sizeof block);
    EQ(weft_write(fd, block, sizeof block, 0), sizeof block);

    struct statx stx;
    memset(&stx, 0, sizeof stx);
    EQ(weft_statx(dfd, "sized", 0, STATX_SIZE | STATX_MODE, &stx), 0);
    cr_assert((stx.stx_mask & (STATX_SIZE | STATX_MODE)) == (STATX_SIZE | STATX_MODE), "stx_mask 0x%x",
              stx.stx_mask);
    EQ(stx.stx_size, sizeof block);
    cr_assert(S_ISREG(stx.stx_mode), "stx_mode 0%o is not a regular file", stx.stx_mode);
    EQ(stx.stx_mode & 07777, 0640);

    /* By fd with AT_EMPTY_PATH, and a directory. */
    memset(&stx, 0, sizeof stx);
    EQ(weft_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx), 0);
    EQ(stx.stx_size, sizeof block);
    EQ(weft_statx(dfd, ".", 0, STATX_MODE, &stx), 0);
    cr_assert(S_ISDIR(stx.stx_mode));

    EQ(weft_statx(dfd, "absent", 0, STATX_SIZE, &stx), -ENOENT);
    EQ(weft_statx(dfd, NULL, 0, STATX_SIZE, &stx), -EFAULT);
    EQ(weft_statx(dfd, "sized", 0, STATX_SIZE, NULL), -EFAULT);

    /* A regular file is always ready. */
    int r = weft_poll(fd, POLLIN | POLLOUT);
    cr_assert(r > 0 && (r & POLLIN) && (r & POLLOUT), "weft_poll on a file: %d (%s)", r, res_name(r));
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, statx_reports_size_and_mode_and_enoent_for_a_missing_path)
{
    mode_t old = umask(022); /* 0640 survives it */
    EQ(run_in_scratch(statx_main), 0);
    umask(old);
}

/* ---- renameat, unlinkat, mkdirat ------------------------------------------------------------------------- */

static void expect_absent(int dfd, const char *name)
{
    struct statx stx;
    EQ(weft_statx(dfd, name, 0, STATX_MODE, &stx), -ENOENT);
}

static intptr_t names_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    uint64_t before = offloaded_now();
    int fd = open_new(dfd, "old", 0600);
    EQ(weft_write(fd, "moved", 5, 0), 5);
    EQ(weft_close(fd), 0);

    EQ(weft_renameat(dfd, "old", dfd, "new", 0), 0);
    expect_absent(dfd, "old");
    struct statx stx;
    EQ(weft_statx(dfd, "new", 0, STATX_SIZE, &stx), 0);
    EQ(stx.stx_size, 5);
    EQ(weft_renameat(dfd, "old", dfd, "other", 0), -ENOENT);
    fd = open_new(dfd, "taken", 0600);
    EQ(weft_close(fd), 0);
    EQ(weft_renameat(dfd, "new", dfd, "taken", RENAME_NOREPLACE), -EEXIST);
    EQ(weft_renameat(dfd, "new", dfd, "taken", 0), 0); /* replaces */
    EQ(weft_statx(dfd, "taken", 0, STATX_SIZE, &stx), 0);
    EQ(stx.stx_size, 5);

    EQ(weft_unlinkat(dfd, "taken", 0), 0);
    expect_absent(dfd, "taken");
    EQ(weft_unlinkat(dfd, "taken", 0), -ENOENT);

    EQ(weft_mkdirat(dfd, "sub", 0700), 0);
    EQ(weft_mkdirat(dfd, "sub", 0700), -EEXIST);
    EQ(weft_statx(dfd, "sub", 0, STATX_MODE, &stx), 0);
    cr_assert(S_ISDIR(stx.stx_mode));
    fd = open_new(dfd, "sub/inner", 0600);
    EQ(weft_close(fd), 0);
    EQ(weft_unlinkat(dfd, "sub", AT_REMOVEDIR), -ENOTEMPTY);
    EQ(weft_unlinkat(dfd, "sub", 0), -EISDIR); /* unlink(2) of a directory */
    EQ(weft_unlinkat(dfd, "sub/inner", 0), 0);
    EQ(weft_unlinkat(dfd, "sub", AT_REMOVEDIR), 0);
    expect_absent(dfd, "sub");
    EQ(weft_mkdirat(dfd, "no/such/parent", 0700), -ENOENT);
    offloaded_since(before, 20);
    return 0;
}

Test(fs, renameat_unlinkat_and_mkdirat_change_names_and_report_their_errors)
{
    EQ(run_in_scratch(names_main), 0);
}

/* ---- _async futures freed after and before completion ------------------------------------------------ */

static intptr_t write_async_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "async", 0600);
    static const char text[] = "written asynchronously";
    weft_future *f = weft_write_async(fd, text, sizeof text, 0);
    cr_assert(f);
    EQ(weft_await(f), sizeof text);
    cr_assert(weft_future_done(f));
    weft_future_free(f);

    /* Done without anyone awaiting it, then freed. */
    f = weft_write_async(fd, "W", 1, 0);
    cr_assert(f);
    for (int i = 0; i < 1000 && !weft_future_done(f); i++)
        settle();
    cr_assert(weft_future_done(f));
    weft_future_free(f);

    char buf[sizeof text] = {0};
    EQ(weft_read(fd, buf, sizeof buf, 0), sizeof text);
    cr_assert(memcmp(buf, "Written asynchronously", sizeof text) == 0, "read back: %s", buf);
    f = weft_write_async(-1, "x", 1, 0);
    cr_assert(f);
    EQ(weft_await(f), -EBADF); /* errors arrive as the result */
    weft_future_free(f);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, write_async_completes_with_the_count_and_is_freed_after_completion)
{
    EQ(run_in_scratch(write_async_main), 0);
}

enum { FREED_READS = 64 };

static intptr_t free_pending_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "pending", 0600);
    static unsigned char data[64 * 1024];
    fill_pattern(data, sizeof data, 3);
    EQ(weft_write(fd, data, sizeof data, 0), sizeof data);
    /* The buffers outlive the reads: the kernel or the executor may still be using them. */
    unsigned char *bufs = malloc((size_t)FREED_READS * 1024);
    cr_assert(bufs);
    for (int i = 0; i < FREED_READS; i++) {
        weft_future *f = weft_read_async(fd, bufs + (size_t)i * 1024, 1024, (int64_t)i * 1024);
        cr_assert(f);
        cr_assert(!weft_future_done(f), "a read_async was done before its task suspended");
        weft_future_free(f); /* still pending: cancelled, memory reclaimed when let go */
    }
    for (int i = 0; i < 10; i++)
        settle();
    /* The fd is fine and the file unchanged. */
    unsigned char back[1024];
    EQ(weft_read(fd, back, sizeof back, 1024), sizeof back);
    same_bytes(back, data + 1024, sizeof back, "read after freed reads");
    EQ(weft_close(fd), 0);
    free(bufs);
    return 0;
}

Test(fs, read_async_freed_while_pending_is_reclaimed_and_harms_nothing)
{
    EQ(run_in_scratch(free_pending_main), 0);
}

/* ---- durable writes: a write and its fdatasync as one linked pair ------------------------------------- */

static intptr_t durable_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "log", 0600);
    static unsigned char data[3 * 4096];
    fill_pattern(data, sizeof data, 21);
    weft_stats st0, st1;
    EQ(weft_stats_get(&st0), 0);
    EQ(weft_write_durable(fd, data, 4096, 0), 4096);
    EQ(weft_stats_get(&st1), 0);
    if (on_io_uring()) {
        /* Two requests, handed to the kernel together, and nothing on the executor. */
        EQ(st1.submissions - st0.submissions, 2);
        EQ(st1.offloaded_ops - st0.offloaded_ops, 0);
    } else {
        EQ(st1.offloaded_ops - st0.offloaded_ops, 1); /* one job runs both */
    }
    /* Past the end of the file: the gap reads as zeros. At the file position, which it advances. */
    EQ(weft_write_durable(fd, data + 4096, 4096, 3 * 4096), 4096);
    EQ(lseek(fd, 0, SEEK_SET), 0);
    EQ(weft_write_durable(fd, data + 8192, 100, -1), 100);
    EQ(lseek(fd, 0, SEEK_CUR), 100);
    EQ(weft_write_durable(fd, data, 0, 50), 0); /* nothing to write: the sync still runs */
    struct stat st;
    cr_assert(fstat(fd, &st) == 0);
    EQ(st.st_size, 4 * 4096);
    static unsigned char back[4 * 4096], want[4 * 4096];
    memcpy(want, data, 4096);
    memcpy(want, data + 8192, 100);
    memcpy(want + 3 * 4096, data + 4096, 4096);
    EQ(weft_read(fd, back, sizeof back, 0), sizeof back);
    same_bytes(back, want, sizeof back, "durable writes read back");
    EQ(weft_write_durable(-1, data, 10, 0), -EBADF);
    EQ(weft_close(fd), 0);
    fd = weft_openat(dfd, "log", O_RDONLY | O_CLOEXEC, 0);
    cr_assert(fd >= 0);
    EQ(weft_write_durable(fd, data, 10, 0), -EBADF); /* not open for writing */
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, write_durable_returns_the_length_once_written_and_synced_at_any_offset)
{
    EQ(run_in_scratch(durable_main), 0);
}

/* The sync runs after the write, and only after a write in full. */
static intptr_t durable_order_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    /* A pipe takes the write and cannot be synced: the write happened, then the sync said EINVAL. */
    int p[2];
    cr_assert(pipe2(p, O_CLOEXEC) == 0);
    EQ(weft_write_durable(p[1], "abc", 3, -1), -EINVAL);
    char buf[4] = {0};
    EQ(read(p[0], buf, sizeof buf), 3);
    cr_assert(memcmp(buf, "abc", 3) == 0, "the write before the failed sync was lost");
    close(p[0]);
    close(p[1]);

    /* A write cut short by RLIMIT_FSIZE is returned as it is (the sync is left out); one that starts
     * at the limit fails with EFBIG. */
    int fd = open_new(dfd, "limited", 0600);
    struct rlimit old, small = {.rlim_cur = 100, .rlim_max = RLIM_INFINITY};
    cr_assert(getrlimit(RLIMIT_FSIZE, &old) == 0);
    small.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    cr_assert(setrlimit(RLIMIT_FSIZE, &small) == 0, "setrlimit: %s", strerror(errno));
    static unsigned char data[200];
    fill_pattern(data, sizeof data, 5);
    ssize_t short_write = weft_write_durable(fd, data, sizeof data, 0);
    ssize_t at_limit = weft_write_durable(fd, data, sizeof data, 100);
    cr_assert(setrlimit(RLIMIT_FSIZE, &old) == 0);
    EQ(short_write, 100);
    EQ(at_limit, -EFBIG);
    unsigned char back[200];
    EQ(weft_read(fd, back, sizeof back, 0), 100);
    same_bytes(back, data, 100, "the part written before the limit");
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, write_durable_syncs_after_the_write_and_not_after_a_short_one)
{
    EQ(run_in_scratch(durable_order_main), 0);
}

/* O_DIRECT: an aligned buffer, offset and length are written and synced; a misaligned one is refused. */
static intptr_t durable_direct_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = weft_openat(dfd, "direct", O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
    cr_assert(fd >= 0, "O_DIRECT open: %d (%s); the scratch directory must be on a disk file system", fd,
              res_name(fd));
    unsigned char *buf;
    cr_assert(posix_memalign((void **)&buf, 4096, 3 * 4096) == 0);
    fill_pattern(buf, 3 * 4096, 9);
    EQ(weft_write_durable(fd, buf, 4096, 4096), 4096);
    EQ(weft_write_durable(fd, buf + 1, 4096, 0), -EINVAL);   /* buffer */
    EQ(weft_write_durable(fd, buf, 4096, 100), -EINVAL);     /* offset */
    EQ(weft_write_durable(fd, buf, 1000, 0), -EINVAL);       /* length */
    EQ(weft_read(fd, buf + 4096, 4096, 4096), 4096);
    same_bytes(buf + 4096, buf, 4096, "an O_DIRECT durable write");
    EQ(weft_read(fd, buf + 4096, 4096, 8192), 0); /* past the end */
    EQ(weft_read(fd, buf + 4097, 4096, 4096), -EINVAL); /* (a hole would read without the check) */
    EQ(weft_close(fd), 0);
    free(buf);
    return 0;
}

Test(fs, o_direct_durable_writes_and_reads_need_alignment_and_say_einval_without_it)
{
    EQ(run_in_scratch(durable_direct_main), 0);
}

/* Cancelled while the write waits (a full pipe): the call ends without waiting for room, or with the
 * real result if the write went through anyway; either way the next call sees the cancel. */
static int full_pipe[2];
static intptr_t durable_cancelled;

static intptr_t durable_writer(void *arg)
{
    (void)arg;
    static char chunk[4096];
    durable_cancelled = weft_write_durable(full_pipe[1], chunk, sizeof chunk, -1);
    return weft_nop();
}

/* full_pipe: a blocking pipe whose buffer is full, so a write to it waits. */
static void full_pipe_make(void)
{
    cr_assert(pipe2(full_pipe, O_CLOEXEC | O_NONBLOCK) == 0);
    static char fill[4096];
    while (write(full_pipe[1], fill, sizeof fill) > 0)
        ;
    cr_assert(fcntl(full_pipe[1], F_SETFL, 0) == 0); /* blocking again: the write must wait */
}

/* Lets t end: a write on the executor (epoll) cannot be interrupted, so after a few turns the pipe is
 * drained, which lets it finish. */
static void drain_until_done(weft_task *t)
{
    static char sink[4096];
    for (int i = 0; i < 50 && !weft_future_done(weft_task_future(t)); i++) {
        settle();
        if (i == 5)
            while (read(full_pipe[0], sink, sizeof sink) > 0 && !weft_future_done(weft_task_future(t)))
                ;
    }
}

static intptr_t durable_cancel_main(void *arg)
{
    (void)arg;
    full_pipe_make();
    weft_task *t = weft_spawn(durable_writer, NULL);
    cr_assert(t);
    settle();
    EQ(weft_cancel(t), 0);
    drain_until_done(t);
    EQ(weft_join(t), -ECANCELED);
    cr_assert(durable_cancelled == -ECANCELED || durable_cancelled == -EINVAL,
              "a cancelled durable write returned %jd (%s)", (intmax_t)durable_cancelled, res_name(durable_cancelled));
    close(full_pipe[0]);
    close(full_pipe[1]);
    return 0;
}

Test(fs, write_durable_cancelled_while_its_write_waits_returns_ecanceled_or_its_real_result)
{
    EQ(run_in_scratch(durable_cancel_main), 0);
}

/* Another task closes the fd while the durable write waits on it: on io_uring weft_close cancels the
 * pair (-EBADF, as any request on a closed fd); the executor's write (epoll) cannot be interrupted and
 * ends when room comes, with the sync's -EINVAL for a pipe. Either way the call ends, and the fd's
 * number, reused at once by a new pipe, is none of its business any more. */
static intptr_t durable_closer(void *arg)
{
    (void)arg;
    weft_close(full_pipe[1]);
    return 0;
}

static intptr_t durable_closed_main(void *arg)
{
    (void)arg;
    full_pipe_make();
    int number = full_pipe[1];
    weft_task *writer = weft_spawn(durable_writer, NULL);
    cr_assert(writer);
    settle();
    EQ(weft_join(weft_spawn(durable_closer, NULL)), 0);
    /* The number goes to a new pipe at once; a sync that found it now would sync that one. */
    int again[2];
    cr_assert(pipe2(again, O_CLOEXEC) == 0);
    EQ(again[0] == number || again[1] == number, true);
    drain_until_done(writer);
    weft_join(writer);
    cr_assert(durable_cancelled == -EBADF || durable_cancelled == -EINVAL,
              "a durable write whose fd was closed returned %jd (%s)", (intmax_t)durable_cancelled,
              res_name(durable_cancelled));
    close(again[0]);
    close(again[1]);
    close(full_pipe[0]);
    return 0;
}

Test(fs, write_durable_whose_fd_another_task_closes_ends_with_ebadf_or_its_real_result)
{
    EQ(run_in_scratch(durable_closed_main), 0);
}

/* ---- where the calls run --------------------------------------------------------------------------------- */

static intptr_t where_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    weft_stats st0, st1;
    EQ(weft_stats_get(&st0), 0);
    int fd = open_new(dfd, "where", 0600);
    EQ(weft_write(fd, "abcd", 4, 0), 4);
    char buf[4];
    EQ(weft_read(fd, buf, 4, 0), 4);
    EQ(weft_fsync(fd, true), 0);
    struct statx stx;
    EQ(weft_statx(dfd, "where", 0, STATX_SIZE, &stx), 0);
    EQ(weft_close(fd), 0);
    EQ(weft_unlinkat(dfd, "where", 0), 0);
    EQ(weft_stats_get(&st1), 0);
    if (on_io_uring()) {
        EQ(st1.offloaded_ops - st0.offloaded_ops, 0);
        EQ(st1.executor_jobs - st0.executor_jobs, 0);
    } else {
        /* openat, write, read, fsync, statx, unlinkat: blocking calls on the executor. */
        cr_assert(st1.offloaded_ops - st0.offloaded_ops >= 6, "offloaded_ops grew by %" PRIu64,
                  st1.offloaded_ops - st0.offloaded_ops);
        cr_assert(st1.executor_jobs - st0.executor_jobs >= st1.offloaded_ops - st0.offloaded_ops,
                  "offloaded ops are executor jobs too");
    }
    return 0;
}

Test(fs, file_calls_run_on_the_executor_on_epoll_and_never_on_io_uring)
{
    EQ(run_in_scratch(where_main), 0);
}

/* ---- handing requests over early (weft_config.submit_batch, WEFT_SUBMIT_BATCH) ------------------------ */

enum { BATCH_READS = 8 };
static uint64_t batch_syscalls; /* the loop's system calls while the reads were being made */

static intptr_t batch_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "batch", 0600);
    static unsigned char data[BATCH_READS * 4096], back[BATCH_READS * 4096];
    fill_pattern(data, sizeof data, 11);
    EQ(weft_write(fd, data, sizeof data, 0), sizeof data);
    weft_future *fs[BATCH_READS];
    weft_stats st0, st1;
    EQ(weft_stats_get(&st0), 0);
    for (int i = 0; i < BATCH_READS; i++) {
        /* Backwards, so that a read landing in the wrong place shows. */
        int k = BATCH_READS - 1 - i;
        cr_assert((fs[i] = weft_read_async(fd, back + (size_t)k * 4096, 4096, (int64_t)k * 4096)) != NULL);
        /* Handed over early or not, a completion is only taken in at the loop's turn. */
        cr_assert(!weft_future_done(fs[i]), "read %d was done before its task suspended", i);
    }
    EQ(weft_stats_get(&st1), 0);
    batch_syscalls = st1.syscalls - st0.syscalls;
    for (int i = 0; i < BATCH_READS; i++) {
        EQ(weft_await(fs[i]), 4096);
        weft_future_free(fs[i]);
    }
    same_bytes(back, data, sizeof back, "reads handed over early");
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, submit_batch_hands_reads_to_the_kernel_as_soon_as_that_many_are_queued)
{
    unsetenv("WEFT_SUBMIT_BATCH");
    static const struct {
        unsigned batch, ring;
        uint64_t enters; /* io_uring_enter calls while 8 reads are made */
    } cases[] = {
        {0, 0, 4},   /* the default: a read at an offset is a storage request, handed over at once
                        while at most 4 are in flight; the next ones go at the loop's wait */
        {1, 0, 8}, {3, 0, 2}, {8, 0, 1},
        {9, 0, 0},   /* a batch that never fills: everything at the loop's wait */
        {64, 64, 0}, /* a batch of the ring's size: the same, named */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        weft_config cfg = {.submit_batch = cases[i].batch, .ring_entries = cases[i].ring};
        EQ(run_in_scratch_with(batch_main, &cfg), 0);
        if (on_io_uring())
            cr_assert(batch_syscalls == cases[i].enters, "submit_batch %u: %" PRIu64 " enters, want %" PRIu64,
                      cases[i].batch, batch_syscalls, cases[i].enters);
        else /* epoll makes no batches: file calls go to the executor as they are made */
            EQ(batch_syscalls, 0);
    }
}

Test(fs, weft_submit_batch_overrides_the_configuration)
{
    setenv("WEFT_SUBMIT_BATCH", "1", 1);
    weft_config cfg = {.submit_batch = 0};
    EQ(run_in_scratch_with(batch_main, &cfg), 0);
    EQ(batch_syscalls, on_io_uring() ? BATCH_READS : 0);
    setenv("WEFT_SUBMIT_BATCH", "9", 1);
    cfg.submit_batch = 1;
    EQ(run_in_scratch_with(batch_main, &cfg), 0);
    EQ(batch_syscalls, 0);
    unsetenv("WEFT_SUBMIT_BATCH");
}

/* With more than 4 storage requests in flight, the default hands them over 8 at a time: 20 reads made
 * in one go cost 4 enters for the first 4, then one for each 8 queued (reads 5-12 and 13-20). */
enum { DEEP_READS = 20 };

static intptr_t deep_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "deep", 0600);
    static unsigned char data[DEEP_READS * 4096], back[DEEP_READS * 4096];
    fill_pattern(data, sizeof data, 13);
    EQ(weft_write(fd, data, sizeof data, 0), sizeof data);
    weft_future *fs[DEEP_READS];
    weft_stats st0, st1;
    EQ(weft_stats_get(&st0), 0);
    for (int i = 0; i < DEEP_READS; i++)
        cr_assert((fs[i] = weft_read_async(fd, back + (size_t)i * 4096, 4096, (int64_t)i * 4096)) != NULL);
    EQ(weft_stats_get(&st1), 0);
    batch_syscalls = st1.syscalls - st0.syscalls;
    gather_each(fs, DEEP_READS, 4096);
    same_bytes(back, data, sizeof back, "reads handed over in batches");
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, the_default_hands_over_storage_requests_at_once_while_few_are_in_flight_then_in_batches)
{
    unsetenv("WEFT_SUBMIT_BATCH");
    EQ(run_in_scratch(deep_main), 0);
    if (on_io_uring())
        EQ(batch_syscalls, 4 + 2);
    else
        EQ(batch_syscalls, 0); /* on the executor as they are made */
}

/* The default hands over storage requests only: reads at the file position (a pipe's) wait for the
 * loop's turn with everything else, in one enter. */
static intptr_t pipe_batch_main(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert(pipe(p) == 0);
    weft_future *fs[BATCH_READS];
    char back[BATCH_READS];
    weft_stats st0, st1;
    EQ(weft_stats_get(&st0), 0);
    for (int i = 0; i < BATCH_READS; i++)
        cr_assert((fs[i] = weft_read_async(p[0], &back[i], 1, -1)) != NULL);
    EQ(weft_stats_get(&st1), 0);
    batch_syscalls = st1.syscalls - st0.syscalls;
    char data[BATCH_READS];
    memset(data, 'p', sizeof data);
    EQ(weft_write(p[1], data, sizeof data, -1), (ssize_t)sizeof data);
    for (int i = 0; i < BATCH_READS; i++) {
        EQ(weft_await(fs[i]), 1);
        weft_future_free(fs[i]);
    }
    cr_assert(memcmp(back, data, sizeof back) == 0);
    EQ(weft_close(p[0]), 0);
    EQ(weft_close(p[1]), 0);
    return 0;
}

Test(fs, the_default_hands_over_storage_requests_at_once_and_pipe_reads_at_the_wait)
{
    unsetenv("WEFT_SUBMIT_BATCH");
    weft_config cfg = WEFT_CONFIG_INIT;
    EQ(run_in_scratch_with(pipe_batch_main, &cfg), 0);
    if (on_io_uring())
        EQ(batch_syscalls, 0);
    else /* epoll tries a read as it is made (then waits for the pipe's edge): at most a call each */
        cr_assert(batch_syscalls <= BATCH_READS + 1, "%" PRIu64 " system calls for %d pipe reads", batch_syscalls,
                  BATCH_READS);
}

/* ---- a lone task and results that come from another thread ------------------------------------------ */

enum { LONE_CALLS = 2000 };

static intptr_t lone_main(void *arg)
{
    int dfd = (int)(intptr_t)arg;
    int fd = open_new(dfd, "lone", 0600);
    weft_stats st0, st1;
    EQ(weft_stats_get(&st0), 0);
    /* Nothing else runs: the task waits for each call where it is, and each result arrives through the
     * loop's list of results from other threads (the executor). None may be missed. */
    for (uint32_t i = 0; i < LONE_CALLS; i++) {
        uint32_t back = 0;
        EQ(weft_write(fd, &i, sizeof i, (int64_t)i * 4), sizeof i);
        EQ(weft_read(fd, &back, sizeof back, (int64_t)i * 4), sizeof back);
        EQ(back, i);
    }
    EQ(weft_stats_get(&st1), 0);
    EQ(st1.offloaded_ops - st0.offloaded_ops, 2 * LONE_CALLS);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fs, a_lone_task_sees_every_result_that_comes_back_from_the_executor)
{
    setenv("WEFT_URING_NO_OPS", "read,write", 1); /* on io_uring too, through the executor */
    unsetenv("WEFT_IDLE_POLL_US");
    EQ(run_in_scratch(lone_main), 0);
    /* The same with the loop polling for results rather than sleeping between them. */
    weft_config cfg = {.idle_poll_ns = SEC(1)};
    EQ(run_in_scratch_with(lone_main, &cfg), 0);
    unsetenv("WEFT_URING_NO_OPS");
}

/*
 * Registered buffers: weft_buffers_register / unregister, and reads and writes through them
 * (weft_read_fixed, weft_write_fixed and their _async forms). On io_uring they are READ_FIXED and
 * WRITE_FIXED requests and no executor thread is involved; on epoll they are plain calls on the
 * executor. Misuse (no set, an index past it, memory outside the buffer named) is -EINVAL on both,
 * and a call refused leaves the set and the file as they were.
 */
#include <sys/stat.h>

#include "common.h"

TestSuite(fixedbuf, .timeout = 30);

static bool on_io_uring(void)
{
    return strcmp(weft_loop_backend(weft_loop_current()), "io_uring") == 0;
}

enum { BUFS = 4, BUF_BYTES = 16384 };

static unsigned char *region; /* BUFS buffers of BUF_BYTES, 4 KiB aligned, one after another */
static struct iovec set[BUFS];

static void set_make(void)
{
    cr_assert(posix_memalign((void **)&region, 4096, BUFS * BUF_BYTES) == 0);
    memset(region, 0, BUFS * BUF_BYTES);
    for (int i = 0; i < BUFS; i++)
        set[i] = (struct iovec){region + (size_t)i * BUF_BYTES, BUF_BYTES};
}

/* Runs fn (a task body that registers the set as it needs) on a fresh set, under a deadline. */
static void run_with_set(weft_fn fn)
{
    set_make();
    EQ(run_guarded(fn, NULL), 0);
    free(region);
}

static uint64_t offloaded_now(void)
{
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    return st.offloaded_ops;
}

/* ---- reads and writes through the set --------------------------------------------------------------- */

static intptr_t round_trip_main(void *arg)
{
    (void)arg;
    EQ(weft_buffers_register(set, BUFS), 0);
    int fd = temp_file(0);
    uint64_t before = offloaded_now();
    /* Each buffer written whole at its own offset, then a piece from the middle of buffer 2. */
    for (int i = 0; i < BUFS; i++) {
        fill_pattern(set[i].iov_base, BUF_BYTES, (uint32_t)i + 1);
        EQ(weft_write_fixed(fd, set[i].iov_base, BUF_BYTES, (int64_t)i * BUF_BYTES, (unsigned)i), BUF_BYTES);
    }
    EQ(weft_write_fixed(fd, region + 2 * BUF_BYTES + 100, 50, 4 * BUF_BYTES, 2), 50);
    memset(region, 0, BUFS * BUF_BYTES);
    for (int i = 0; i < BUFS; i++) {
        unsigned idx = (unsigned)(BUFS - 1 - i); /* into another buffer than the one it came from */
        EQ(weft_read_fixed(fd, set[idx].iov_base, BUF_BYTES, (int64_t)i * BUF_BYTES, idx), BUF_BYTES);
        expect_pattern(set[idx].iov_base, BUF_BYTES, (uint32_t)i + 1);
    }
    /* A short file: the read stops at its end; past the end it is 0. The last byte of a buffer is
     * usable, and so is an empty read at the very end of one. */
    EQ(weft_read_fixed(fd, region, BUF_BYTES, 4 * BUF_BYTES, 0), 50);
    EQ(weft_read_fixed(fd, region, BUF_BYTES, 10 * BUF_BYTES, 0), 0);
    EQ(weft_read_fixed(fd, region + BUF_BYTES - 1, 1, 0, 0), 1);
    EQ(weft_read_fixed(fd, region + BUF_BYTES, 0, 0, 0), 0);
    /* At the file position (offset -1), which it advances. */
    EQ(lseek(fd, 5, SEEK_SET), 5);
    EQ(weft_read_fixed(fd, region, 10, -1, 0), 10);
    EQ(lseek(fd, 0, SEEK_CUR), 15);
    if (on_io_uring())
        EQ(offloaded_now() - before, 0);
    else
        cr_assert(offloaded_now() - before >= 2 * BUFS, "epoll ran only %" PRIu64 " fixed calls on the executor",
                  offloaded_now() - before);
    EQ(weft_close(fd), 0);
    EQ(weft_buffers_unregister(), 0);
    return 0;
}

Test(fixedbuf, writes_and_reads_through_registered_buffers_move_the_right_bytes_at_any_offset)
{
    run_with_set(round_trip_main);
}

/* Many in flight from one task: every buffer's read back in one go, in a shuffled order. */
enum { PIECES = 64, PIECE = BUFS * BUF_BYTES / PIECES };

static intptr_t async_main(void *arg)
{
    (void)arg;
    EQ(weft_buffers_register(set, BUFS), 0);
    int fd = temp_file(0);
    fill_pattern(region, BUFS * BUF_BYTES, 77);
    weft_future *fs[PIECES];
    for (int i = 0; i < PIECES; i++) {
        unsigned char *at = region + (size_t)i * PIECE;
        fs[i] = weft_write_fixed_async(fd, at, PIECE, (int64_t)i * PIECE, (unsigned)(i * PIECE / BUF_BYTES));
        cr_assert(fs[i], "weft_write_fixed_async %d: %s", i, strerror(errno));
    }
    gather_each(fs, PIECES, PIECE);
    memset(region, 0, BUFS * BUF_BYTES);
    for (int k = 0; k < PIECES; k++) {
        int i = (k * 37) % PIECES;
        unsigned char *at = region + (size_t)i * PIECE;
        fs[k] = weft_read_fixed_async(fd, at, PIECE, (int64_t)i * PIECE, (unsigned)(i * PIECE / BUF_BYTES));
        cr_assert(fs[k]);
    }
    gather_each(fs, PIECES, PIECE);
    expect_pattern(region, BUFS * BUF_BYTES, 77);
    /* Misuse through the async form: no future, and errno says why. */
    NULL_WITH_ERRNO(weft_read_fixed_async(fd, region, 1, 0, BUFS), EINVAL);
    NULL_WITH_ERRNO(weft_write_fixed_async(fd, region + BUF_BYTES - 1, 2, 0, 0), EINVAL);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fixedbuf, many_fixed_transfers_in_flight_from_one_task_land_byte_exact)
{
    run_with_set(async_main);
}

/* O_DIRECT through a registered buffer: aligned works, misaligned is the kernel's EINVAL as ever. */
static intptr_t direct_main(void *arg)
{
    (void)arg;
    EQ(weft_buffers_register(set, BUFS), 0);
    int fd = temp_file(O_DIRECT);
    fill_pattern(region, 8192, 12);
    EQ(weft_write_fixed(fd, region, 8192, 0, 0), 8192);
    EQ(weft_read_fixed(fd, region + BUF_BYTES, 4096, 4096, 1), 4096);
    same_bytes(region + BUF_BYTES, region + 4096, 4096, "an O_DIRECT read into a registered buffer");
    EQ(weft_read_fixed(fd, region + BUF_BYTES, 4096, 8192, 1), 0); /* past the end */
    EQ(weft_read_fixed(fd, region + BUF_BYTES + 1, 4096, 0, 1), -EINVAL);  /* buffer */
    EQ(weft_read_fixed(fd, region + BUF_BYTES, 4096, 512 + 1, 1), -EINVAL); /* offset */
    EQ(weft_write_fixed(fd, region, 100, 0, 0), -EINVAL);                  /* length */
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fixedbuf, o_direct_reads_and_writes_through_registered_buffers_need_the_files_alignment)
{
    run_with_set(direct_main);
}

/* ---- misuse --------------------------------------------------------------------------------------------- */

static intptr_t misuse_main(void *arg)
{
    (void)arg;
    int fd = temp_file(0);
    EQ(weft_write(fd, "0123456789", 10, 0), 10);
    /* Nothing registered yet. */
    EQ(weft_read_fixed(fd, region, 10, 0, 0), -EINVAL);
    EQ(weft_buffers_unregister(), -ENXIO);
    /* A set the kernel is never shown. */
    EQ(weft_buffers_register(NULL, 1), -EINVAL);
    EQ(weft_buffers_register(set, 0), -EINVAL);
    EQ(weft_buffers_register(set, 16385), -EINVAL);
    struct iovec bad[2] = {set[0], {NULL, 10}};
    EQ(weft_buffers_register(bad, 2), -EINVAL);
    bad[1] = (struct iovec){region + BUF_BYTES, 0};
    EQ(weft_buffers_register(bad, 2), -EINVAL);
    EQ(weft_read_fixed(fd, region, 10, 0, 0), -EINVAL); /* a refused set left nothing registered */

    EQ(weft_buffers_register(set, 2), 0); /* buffers 0 and 1 only */
    EQ(weft_buffers_register(set, 2), -EBUSY);
    unsigned char outside[16];
    EQ(weft_read_fixed(fd, region, 10, 0, 2), -EINVAL);                   /* index past the set */
    EQ(weft_read_fixed(fd, region, 10, 0, UINT32_MAX), -EINVAL);
    EQ(weft_read_fixed(fd, outside, 10, 0, 0), -EINVAL);                  /* memory never registered */
    EQ(weft_read_fixed(fd, region + 2 * BUF_BYTES, 10, 0, 1), -EINVAL);   /* registered memory, unlisted */
    EQ(weft_read_fixed(fd, region + BUF_BYTES, 10, 0, 0), -EINVAL);       /* the next buffer, not index 0 */
    EQ(weft_read_fixed(fd, region + BUF_BYTES - 5, 10, 0, 0), -EINVAL);   /* runs past its end */
    EQ(weft_read_fixed(fd, region - 1, 10, 0, 0), -EINVAL);               /* starts before it */
    EQ(weft_write_fixed(fd, region, SIZE_MAX, 0, 0), -EINVAL);
    /* Refused calls changed nothing: the file and the buffers are as they were. */
    for (size_t i = 0; i < 2 * BUF_BYTES; i++)
        cr_assert(region[i] == 0, "byte %zu of the set was written by a refused call", i);
    char back[10];
    EQ(pread(fd, back, 10, 0), 10);
    cr_assert(memcmp(back, "0123456789", 10) == 0);
    /* The set still works, and a bad fd is the kernel's -EBADF as for any read. */
    EQ(weft_read_fixed(fd, region + BUF_BYTES + 3, 10, 0, 1), 10);
    cr_assert(memcmp(region + BUF_BYTES + 3, "0123456789", 10) == 0);
    EQ(weft_read_fixed(-1, region, 10, 0, 0), -EBADF);

    /* Unregistered: the calls are refused again; a new set (all four) may be registered. */
    EQ(weft_buffers_unregister(), 0);
    EQ(weft_read_fixed(fd, region, 10, 0, 0), -EINVAL);
    EQ(weft_buffers_unregister(), -ENXIO);
    EQ(weft_buffers_register(set, BUFS), 0);
    EQ(weft_read_fixed(fd, region + 3 * BUF_BYTES, 10, 0, 3), 10);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fixedbuf, misuse_is_einval_or_said_precisely_and_leaves_the_set_and_the_file_as_they_were)
{
    run_with_set(misuse_main);
}

/* Outside a loop there is no set to register with; outside a task no call can wait. */
static void from_callback(void *arg)
{
    int *results = arg;
    results[0] = (int)weft_read_fixed(0, region, 1, 0, 0);
    results[1] = weft_buffers_register(set, 1);
    results[2] = weft_buffers_unregister();
}

static intptr_t callback_main(void *arg)
{
    int *results = arg;
    EQ(weft_call_soon(from_callback, results), 0);
    settle();
    return 0;
}

Test(fixedbuf, the_calls_need_a_loop_and_a_task_but_registration_works_from_a_callback)
{
    set_make();
    EQ(weft_buffers_register(set, 1), -EPERM);
    EQ(weft_buffers_unregister(), -EPERM);
    EQ(weft_read_fixed(0, region, 1, 0, 0), -EPERM);
    NULL_WITH_ERRNO(weft_read_fixed_async(0, region, 1, 0, 0), EPERM);
    int results[3] = {1, 1, 1};
    EQ(run_guarded(callback_main, results), 0);
    EQ(results[0], -EPERM);
    EQ(results[1], 0);
    EQ(results[2], 0);
    free(region);
}

/* A set registered in one run of a loop is still there in the next, and goes with the loop. */
static intptr_t register_only(void *arg)
{
    (void)arg;
    return weft_buffers_register(set, BUFS);
}

static intptr_t use_set(void *arg)
{
    (void)arg;
    int fd = temp_file(0);
    EQ(weft_write(fd, "abc", 3, 0), 3);
    intptr_t r = weft_read_fixed(fd, region + 2 * BUF_BYTES, 3, 0, 2);
    weft_close(fd);
    return r;
}

Test(fixedbuf, a_set_survives_between_runs_of_a_loop_and_is_released_with_it)
{
    set_make();
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l);
    intptr_t r = -1;
    EQ(weft_loop_run(l, register_only, NULL, &r), 0);
    EQ(r, 0);
    EQ(weft_loop_run(l, use_set, NULL, &r), 0);
    EQ(r, 3);
    cr_assert(memcmp(region + 2 * BUF_BYTES, "abc", 3) == 0);
    weft_loop_free(l);
    /* A new loop starts with no set. */
    l = weft_loop_new(NULL);
    cr_assert(l);
    EQ(weft_loop_run(l, use_set, NULL, &r), 0);
    EQ(r, -EINVAL);
    weft_loop_free(l);
    free(region);
}

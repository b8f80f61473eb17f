/*
 * The loop's configuration: how much of weft_config a caller's size covers, and what a loop does with
 * the values it gets from the structure and from the environment.
 *
 * Each test runs under the backend meson's registration names (WEFT_BACKEND); a test that sets
 * weft_config.backend itself first takes that name and unsets the variable, which would override it.
 */
#include "common.h"

TestSuite(config, .timeout = 30);

/* The backend this run is for, taken out of the environment so that cfg.backend decides. */
static const char *backend_under_test(void)
{
    static char name[32];
    snprintf(name, sizeof name, "%s", backend_env());
    unsetenv("WEFT_BACKEND");
    return name;
}

/* Makes a loop with cfg, asserts it runs on the backend cfg names, frees it. */
static void loop_on_named_backend(const weft_config *cfg)
{
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    cr_assert_str_eq(weft_loop_backend(l), cfg->backend);
    weft_loop_free(l);
}

/* ---- size: growing without breaking programs --------------------------------------------------------- */

Test(config, size_0_reads_the_0_1_fields_so_zero_and_designated_initialisers_work)
{
    weft_config zero = {0};
    EQ(zero.size, 0);
    weft_loop *l = weft_loop_new(&zero);
    cr_assert(l != NULL, "weft_loop_new({0}): %s", strerror(errno));
    weft_loop_free(l);

    weft_config named = {.backend = backend_under_test()};
    EQ(named.size, 0);
    loop_on_named_backend(&named);
}

Test(config, weft_config_init_declares_the_headers_size_and_is_all_defaults)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    EQ(cfg.size, sizeof(weft_config));
    cr_assert(cfg.backend == NULL && cfg.ring_entries == 0 && cfg.stack_size == 0 && cfg.slow_task_ns == 0,
              "WEFT_CONFIG_INIT sets nothing but size");
    cfg.backend = backend_under_test();
    loop_on_named_backend(&cfg);
}

/* A program built against a newer weft.h: its weft_config has fields after ours. */
struct newer_config {
    weft_config known;
    uint64_t later[4];
};

Test(config, a_larger_size_is_accepted_when_the_fields_this_library_lacks_are_zero)
{
    struct newer_config newer;
    memset(&newer, 0, sizeof newer);
    newer.known.size = sizeof newer;
    newer.known.backend = backend_under_test();
    loop_on_named_backend(&newer.known);
}

Test(config, a_larger_size_setting_a_field_this_library_lacks_is_e2big_and_says_so)
{
    struct newer_config newer;
    memset(&newer, 0, sizeof newer);
    newer.known.size = sizeof newer;
    newer.later[2] = 1;
    stderr_capture_begin();
    NULL_WITH_ERRNO(weft_loop_new(&newer.known), E2BIG);
    const char *said = stderr_capture_end();
    char where[64];
    snprintf(where, sizeof where, "sets a field at byte %zu", offsetof(struct newer_config, later[2]));
    CAPTURED_HAS(said, where);
    CAPTURED_HAS(said, "built against a newer weft.h");
}

Test(config, a_size_smaller_than_the_0_1_structure_is_einval_and_says_so)
{
    size_t sizes[] = {1, sizeof(size_t), offsetof(weft_config, submit_batch)};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        weft_config cfg = {.size = sizes[i]};
        stderr_capture_begin();
        NULL_WITH_ERRNO(weft_loop_new(&cfg), EINVAL);
        const char *said = stderr_capture_end();
        char what[64];
        snprintf(what, sizeof what, "weft_config.size is %zu", sizes[i]);
        CAPTURED_HAS(said, what);
    }
}

/* ---- values checked: refused with EINVAL and a line that says why -------------------------------------- */

static intptr_t must_not_run(void *arg)
{
    (void)arg;
    cr_assert_fail("main ran although the configuration was refused");
    return 0;
}

static intptr_t spawn_and_double(void *arg);

/*
 * With var set to value (var NULL: nothing set), asserts that weft_loop_new(cfg) fails with errno
 * want and says `said` on stderr; for a variable also that weft_run returns -want, says it again and
 * never runs main. Unsets var afterwards.
 */
static void refused(const char *var, const char *value, const weft_config *cfg, int want, const char *said)
{
    if (var)
        cr_assert(setenv(var, value, 1) == 0);
    stderr_capture_begin();
    errno = 0;
    weft_loop *l = weft_loop_new(cfg);
    int err = errno;
    const char *captured = stderr_capture_end();
    cr_assert(l == NULL, "%s=\"%s\": weft_loop_new made a loop", var ? var : "cfg", var ? value : "");
    cr_assert(err == want, "%s=\"%s\": errno %d (%s), want %d (%s)", var ? var : "cfg", var ? value : "", err,
              strerror(err), want, strerror(want));
    CAPTURED_HAS(captured, said);
    if (var) {
        intptr_t result = 12345;
        stderr_capture_begin();
        int rc = weft_run(must_not_run, NULL, &result);
        captured = stderr_capture_end();
        EQ(rc, -want);
        EQ(result, 12345);
        CAPTURED_HAS(captured, said);
        unsetenv(var);
    }
}

/* With var set to value (var NULL: nothing set), a loop is made with cfg and runs tasks. */
static void accepted(const char *var, const char *value, const weft_config *cfg)
{
    if (var)
        cr_assert(setenv(var, value, 1) == 0);
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l != NULL, "%s=\"%s\": weft_loop_new: %s", var ? var : "cfg", var ? value : "", strerror(errno));
    intptr_t result = 0;
    EQ(weft_loop_run(l, spawn_and_double, (void *)21, &result), 0);
    EQ(result, 42);
    weft_loop_free(l);
    if (var)
        unsetenv(var);
}

static intptr_t double_it(void *arg)
{
    weft_yield();
    return (intptr_t)arg * 2;
}

static intptr_t spawn_and_double(void *arg)
{
    return weft_join(weft_spawn(double_it, arg));
}

Test(config, weft_stack_size_that_is_not_digits_and_a_suffix_is_einval_naming_the_value)
{
    static const char *bad[] = {"-5", "abc", "12q", "12kb", " 12", "12 ", "+12", "0x100", "1.5m", "k"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char said[96];
        snprintf(said, sizeof said, "WEFT_STACK_SIZE is \"%s\": not a size in bytes", bad[i]);
        refused("WEFT_STACK_SIZE", bad[i], NULL, EINVAL, said);
    }
    refused("WEFT_STACK_SIZE", "99999999999999999999", NULL, EINVAL, "WEFT_STACK_SIZE is \"99999999999999999999\": too large");
    refused("WEFT_STACK_SIZE", "17179869184g", NULL, EINVAL, "too large");
}

Test(config, stack_sizes_with_suffixes_and_the_empty_string_are_accepted)
{
    static const char *good[] = {"65536", "64k", "64K", "2m", "1M", "0", ""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        accepted("WEFT_STACK_SIZE", good[i], NULL);
    weft_config tiny = {.stack_size = 100}; /* raised to the 16 KiB minimum */
    accepted(NULL, NULL, &tiny);
}

Test(config, stack_size_above_1_gib_or_overflowing_when_rounded_is_einval)
{
    refused("WEFT_STACK_SIZE", "2g", NULL, EINVAL, "WEFT_STACK_SIZE is \"2g\": a task stack may be at most 1 GiB");
    refused("WEFT_STACK_SIZE", "1048577k", NULL, EINVAL, "at most 1 GiB");
    size_t absurd[] = {SIZE_MAX - 4, SIZE_MAX, (size_t)1 << 50, ((size_t)1 << 30) + 1};
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        weft_config cfg = {.stack_size = absurd[i]};
        char said[96];
        snprintf(said, sizeof said, "weft_config.stack_size is %zu: a task stack may be at most 1 GiB", absurd[i]);
        refused(NULL, NULL, &cfg, EINVAL, said);
    }
}

Test(config, a_stack_size_the_address_space_cannot_hold_is_enomem_and_says_so)
{
    /* 512 MiB stacks are within bounds, but a slab of 64 of them cannot fit in 256 MiB of address
     * space: the child limits its own and reports weft_run's error (exit 100). */
    cr_assert(setenv("WEFT_STACK_SIZE", "512m", 1) == 0);
    char err[8192], status[96];
    int st = run_child("stack_unmappable", err, sizeof err);
    describe_status(st, status, sizeof status);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 100, "child %s, want exit 100; stderr:\n%s", status, err);
    CAPTURED_HAS(err, "task stacks of 524288 KiB cannot be mapped");
    CAPTURED_HAS(err, "weft_run: Cannot allocate memory");
}

Test(config, unknown_backends_are_einval_naming_the_accepted_ones)
{
    refused("WEFT_BACKEND", "bogus", NULL, EINVAL,
            "WEFT_BACKEND is \"bogus\": the backends are \"io_uring\" and \"epoll\"\n");
    refused("WEFT_BACKEND", "EPOLL", NULL, EINVAL, "WEFT_BACKEND is \"EPOLL\": the backends are \"io_uring\" and \"epoll\", in lower case");
    refused("WEFT_BACKEND", "IO_URING", NULL, EINVAL, "in lower case");
    unsetenv("WEFT_BACKEND");
    weft_config cfg = {.backend = "Epoll"};
    refused(NULL, NULL, &cfg, EINVAL, "weft_config.backend is \"Epoll\": the backends are");
    cfg.backend = "";
    refused(NULL, NULL, &cfg, EINVAL, "weft_config.backend is \"\": the backends are");
}

Test(config, ring_entries_above_16384_or_not_a_number_are_einval)
{
    refused("WEFT_RING_ENTRIES", "16385", NULL, EINVAL, "WEFT_RING_ENTRIES is \"16385\": io_uring takes at most 16384");
    refused("WEFT_RING_ENTRIES", "-1", NULL, EINVAL, "WEFT_RING_ENTRIES is \"-1\": not a number: digits only");
    refused("WEFT_RING_ENTRIES", "256k", NULL, EINVAL, "not a number: digits only");
    weft_config cfg = {.ring_entries = 32768};
    refused(NULL, NULL, &cfg, EINVAL, "weft_config.ring_entries is 32768: io_uring takes at most 16384");
    cfg.ring_entries = UINT32_MAX;
    refused(NULL, NULL, &cfg, EINVAL, "weft_config.ring_entries is 4294967295");
    /* The largest accepted: on io_uring the kernel makes a ring of that size. */
    accepted("WEFT_RING_ENTRIES", "16384", NULL);
}

Test(config, executor_threads_and_queue_beyond_their_limits_are_einval)
{
    refused("WEFT_EXECUTOR_THREADS", "1025", NULL, EINVAL, "WEFT_EXECUTOR_THREADS is \"1025\": an executor has at most 1024 threads");
    refused("WEFT_EXECUTOR_THREADS", "four", NULL, EINVAL, "WEFT_EXECUTOR_THREADS is \"four\": not a number");
    refused("WEFT_EXECUTOR_QUEUE", "16777217", NULL, EINVAL, "a queue of more than 16777216 jobs bounds nothing");
    refused("WEFT_EXECUTOR_QUEUE", "-1", NULL, EINVAL, "WEFT_EXECUTOR_QUEUE is \"-1\": not a number");
    weft_config cfg = {.executor_threads = 100000};
    refused(NULL, NULL, &cfg, EINVAL, "weft_config.executor_threads is 100000: an executor has at most 1024 threads");
    weft_config queue = {.executor_queue = SIZE_MAX};
    refused(NULL, NULL, &queue, EINVAL, "weft_config.executor_queue is 18446744073709551615");
    accepted("WEFT_EXECUTOR_THREADS", "1024", NULL);
}

Test(config, submit_batch_larger_than_the_ring_is_einval)
{
    unsetenv("WEFT_SUBMIT_BATCH");
    weft_config cfg = {.ring_entries = 8, .submit_batch = 9};
    refused(NULL, NULL, &cfg, EINVAL, "submit_batch is 9, more than the ring's 8 entries: it could never fill");
    refused("WEFT_SUBMIT_BATCH", "257", NULL, EINVAL, "submit_batch is 257, more than the ring's 256 entries");
    refused("WEFT_SUBMIT_BATCH", "1,2", NULL, EINVAL, "WEFT_SUBMIT_BATCH is \"1,2\": not a number");
    cfg.submit_batch = 8;
    accepted(NULL, NULL, &cfg);
}

Test(config, times_in_microseconds_and_milliseconds_must_fit_in_nanoseconds)
{
    refused("WEFT_IDLE_POLL_US", "18446744073709552", NULL, EINVAL, "WEFT_IDLE_POLL_US is \"18446744073709552\": too large");
    refused("WEFT_IDLE_POLL_US", "1e3", NULL, EINVAL, "WEFT_IDLE_POLL_US is \"1e3\": not a number");
    refused("WEFT_SLOW_MS", "18446744073710", NULL, EINVAL, "WEFT_SLOW_MS is \"18446744073710\": too large");
    refused("WEFT_SLOW_MS", "5ms", NULL, EINVAL, "WEFT_SLOW_MS is \"5ms\": not a number");
    accepted("WEFT_IDLE_POLL_US", "18446744073709551", NULL); /* the largest that fits */
    accepted("WEFT_SLOW_MS", "1000", NULL);
}

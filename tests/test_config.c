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
    const char *env = getenv("WEFT_BACKEND");
    snprintf(name, sizeof name, "%s", env && *env ? env : "io_uring");
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

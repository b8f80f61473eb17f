/*
 * A stand-in for the part of Criterion the tests use, for the ThreadSanitizer build only.
 *
 * Why: Criterion cannot start under TSan. Its sandbox (BoxFort) maps an "inheritable arena" with
 * mmap(MAP_FIXED) at a random address in [0x200000000000, 0x7f0000000000); TSan's mmap interceptor
 * refuses fixed mappings outside its application ranges, so every Criterion binary built with
 * -fsanitize=thread aborts before running a test: "criterion: Could not initialize inheritable arena:
 * Resource temporarily unavailable" (Criterion issue #274, still open; seen here with Criterion 2.4.1
 * and gcc 12 in 20 runs out of 20).
 *
 * This header keeps the tests' source unchanged: Test, TestSuite (with .timeout), cr_assert,
 * cr_assert_str_eq and cr_assert_fail. Like Criterion it runs every test in its own process (fork from
 * a single-threaded runner, which TSan supports), enforces the suite's timeout, runs --jobs tests at
 * once, and ends with Criterion's "Synthesis" line so tests/run reads both the same way.
 * It is compiled into the test executable (one translation unit per binary) and supplies main().
 */
#ifndef MINICRITERION_H
#define MINICRITERION_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct mc_suite {
    double timeout;
};

struct mc_test {
    const char *suite, *name;
    void (*fn)(void);
    const struct mc_suite *cfg;
    struct mc_test *next;
};

static struct mc_test *mc_tests_head, **mc_tests_tail = &mc_tests_head;
static const char *mc_current_test = "";

static inline void mc_register(struct mc_test *t)
{
    *mc_tests_tail = t;
    mc_tests_tail = &t->next;
}

/* TestSuite(name, .timeout = seconds): the options of every test of that suite. */
#define TestSuite(Suite, ...) static const struct mc_suite mc_suite_##Suite = {__VA_ARGS__}

#define Test(Suite, Name, ...)                                                                        \
    static void mc_fn_##Suite##_##Name(void);                                                         \
    static struct mc_test mc_test_##Suite##_##Name = {#Suite, #Name, mc_fn_##Suite##_##Name,           \
                                                      &mc_suite_##Suite, NULL};                       \
    __attribute__((constructor)) static void mc_reg_##Suite##_##Name(void)                           \
    {                                                                                                 \
        mc_register(&mc_test_##Suite##_##Name);                                                       \
    }                                                                                                 \
    static void mc_fn_##Suite##_##Name(void)

/* No format attribute: cr_assert(cond) passes an empty format, which -Wformat-zero-length would flag.
 * The Criterion builds check the tests' formats. */
__attribute__((noreturn)) static inline void mc_fail(const char *file, int line, const char *expr,
                                                     const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   %s\n[FAIL] %s\n", file, line,
            msg[0] ? msg : expr, mc_current_test);
    fflush(stderr);
    _exit(1);
}

#define cr_assert(Cond, ...)                                                                          \
    do {                                                                                              \
        if (!(Cond))                                                                                  \
            mc_fail(__FILE__, __LINE__, "The expression " #Cond " is false.", "" __VA_ARGS__);      \
    } while (0)

#define cr_assert_fail(...) mc_fail(__FILE__, __LINE__, "The test failed.", "" __VA_ARGS__)

#define cr_assert_str_eq(Actual, Expected, ...)                                                       \
    do {                                                                                              \
        const char *mc_a_ = (Actual), *mc_e_ = (Expected);                                            \
        if (strcmp(mc_a_, mc_e_) != 0)                                                                \
            mc_fail(__FILE__, __LINE__, "", "%s: got \"%s\", want \"%s\"", #Actual, mc_a_, mc_e_);      \
    } while (0)

struct mc_running {
    pid_t pid;
    struct mc_test *test;
    struct timespec started;
};

static inline double mc_elapsed(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--jobs=", 7) == 0)
            jobs = strtol(argv[i] + 7, NULL, 10);
        else if (strncmp(argv[i], "--filter=", 9) == 0)
            filter = argv[i] + 9;
    }
    if (jobs < 1)
        jobs = 1;
    struct mc_running *running = calloc((size_t)jobs, sizeof *running);
    if (!running)
        return 2;

    unsigned tested = 0, passing = 0, failing = 0, crashing = 0;
    struct mc_test *next = mc_tests_head;
    long active = 0;
    fprintf(stderr, "[----] minicriterion (TSan build: Criterion cannot run under ThreadSanitizer)\n");
    while (next || active) {
        while (next && active < jobs) {
            struct mc_test *t = next;
            next = t->next;
            char full[256];
            snprintf(full, sizeof full, "%s::%s", t->suite, t->name);
            if (filter && !strstr(full, filter))
                continue;
            fflush(NULL);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0) {
                mc_current_test = strdup(full);
                t->fn();
                fflush(NULL);
                _exit(0);
            }
            for (long s = 0; s < jobs; s++)
                if (!running[s].pid) {
                    running[s].pid = pid;
                    running[s].test = t;
                    clock_gettime(CLOCK_MONOTONIC, &running[s].started);
                    break;
                }
            active++;
            tested++;
        }
        int status;
        pid_t done = waitpid(-1, &status, WNOHANG);
        if (done <= 0) {
            /* Enforce timeouts while waiting. */
            for (long s = 0; s < jobs; s++) {
                struct mc_running *r = &running[s];
                double limit = r->pid && r->test->cfg->timeout > 0 ? r->test->cfg->timeout : 0;
                if (limit && mc_elapsed(&r->started) > limit)
                    kill(r->pid, SIGKILL);
            }
            usleep(2000);
            continue;
        }
        for (long s = 0; s < jobs; s++) {
            struct mc_running *r = &running[s];
            if (r->pid != done)
                continue;
            double secs = mc_elapsed(&r->started);
            double limit = r->test->cfg->timeout;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                passing++;
            } else if (WIFEXITED(status)) {
                failing++;
                fprintf(stderr, "[FAIL] %s::%s: exit %d (%.2fs)\n", r->test->suite, r->test->name,
                        WEXITSTATUS(status), secs);
            } else {
                crashing++;
                if (WTERMSIG(status) == SIGKILL && limit && secs > limit)
                    fprintf(stderr, "[FAIL] %s::%s: Timed out. (%.2fs)\n", r->test->suite, r->test->name, secs);
                else
                    fprintf(stderr, "[FAIL] %s::%s: CRASH! (signal %d, %s)\n", r->test->suite, r->test->name,
                            WTERMSIG(status), strsignal(WTERMSIG(status)));
            }
            r->pid = 0;
            active--;
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %u | Passing: %u | Failing: %u | Crashing: %u \n", tested, passing,
            failing, crashing);
    free(running);
    return (failing || crashing) ? 1 : 0;
}

#endif /* MINICRITERION_H */

/*
 * Diagnostics on stderr, read from a child process (tests/child.c): a stack overflow names the task,
 * tasks nobody joined are named when the loop ends, a failed detached task is reported with its error,
 * and an ordinary run prints nothing.
 */
#include "common.h"

TestSuite(diag, .timeout = 60);

#define ERR_CAP 65536

struct child_run {
    int status;
    char status_s[96];
    char err[ERR_CAP];
};

static struct child_run child;

static void run_scenario(const char *scenario)
{
    child.status = run_child(scenario, child.err, sizeof child.err);
    describe_status(child.status, child.status_s, sizeof child.status_s);
}

static bool exited_with(int code)
{
    return WIFEXITED(child.status) && WEXITSTATUS(child.status) == code;
}

#define ERR_HAS(text)                                                                                 \
    cr_assert(strstr(child.err, (text)) != NULL, "stderr lacks \"%s\" (child %s); stderr:\n%s", (text), \
              child.status_s, child.err)
#define ERR_LACKS(text)                                                                               \
    cr_assert(strstr(child.err, (text)) == NULL, "stderr has \"%s\" (child %s); stderr:\n%s", (text),   \
              child.status_s, child.err)

Test(diag, stack_overflow_dies_by_sigsegv_naming_the_task)
{
    run_scenario("overflow");
    cr_assert(WIFSIGNALED(child.status) && WTERMSIG(child.status) == SIGSEGV,
              "child %s, want killed by SIGSEGV; stderr:\n%s", child.status_s, child.err);
    ERR_HAS("overflow");
    ERR_HAS("deep-recurser");
    ERR_LACKS("MARK survived-overflow");
}

Test(diag, tasks_never_joined_are_named_when_the_loop_ends)
{
    run_scenario("never_joined");
    cr_assert(exited_with(0), "child %s; stderr:\n%s", child.status_s, child.err);
    ERR_HAS("never joined");
    ERR_HAS("forgotten-ended");
    ERR_HAS("forgotten-sleeping");
    ERR_LACKS("joined-ok");
    ERR_LACKS("detached-ok");
    /* Reported when the loop ends, after main returned. */
    const char *mark = strstr(child.err, "MARK main-returns");
    cr_assert(mark != NULL);
    cr_assert(strstr(mark, "forgotten-ended") != NULL, "reported before the loop ended:\n%s", child.err);
}

Test(diag, detached_task_failing_with_econnreset_is_reported_with_name_and_error)
{
    run_scenario("detach_fail_econnreset");
    cr_assert(exited_with(0), "child %s; stderr:\n%s", child.status_s, child.err);
    ERR_HAS("doomed-detached");
    ERR_HAS(strerror(ECONNRESET));
    /* One report, not one at failure and another at loop end. */
    const char *first = strstr(child.err, "doomed-detached");
    cr_assert(strstr(first + 1, "doomed-detached") == NULL, "reported twice:\n%s", child.err);
}

Test(diag, an_ordinary_run_prints_nothing)
{
    run_scenario("clean");
    cr_assert(exited_with(0), "child %s; stderr:\n%s", child.status_s, child.err);
    cr_assert(child.err[0] == '\0', "stderr of a clean run:\n%s", child.err);
}

Test(diag, freeing_a_task_future_is_refused_and_reported)
{
    run_scenario("free_task_future");
    /* The task's future was left alone: join still gives the task's result, 5. */
    cr_assert(exited_with(5), "child %s; stderr:\n%s", child.status_s, child.err);
    const char *mark = strstr(child.err, "MARK after-free");
    cr_assert(mark != NULL, "stderr:\n%s", child.err);
    cr_assert(mark != child.err, "weft_future_free on a task's future was not reported:\n%s", child.err);
}

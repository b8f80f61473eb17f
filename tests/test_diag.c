/*
 * Diagnostics on stderr, read from a child process (tests/child.c): a stack overflow names the task,
 * tasks nobody joined are named when the loop ends, a failed detached task is reported with its error,
 * and an ordinary run prints nothing.
 */
#include "common.h"

#include <pthread.h>
#include <sched.h>

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

/* ---- the slow-task watchdog, futures failed unawaited, the overflow message on each backend -------- */

/* Copies the stderr line holding text (without its newline) into out; false if there is none. */
static bool line_with(const char *text, char *out, size_t cap)
{
    const char *hit = strstr(child.err, text);
    if (!hit)
        return false;
    const char *start = hit;
    while (start > child.err && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (len >= cap)
        len = cap - 1;
    memcpy(out, start, len);
    out[len] = '\0';
    return true;
}

/* The number written just before " ms" after text on its line, or -1. */
static long ms_after(const char *line, const char *text)
{
    const char *p = strstr(line, text);
    if (!p)
        return -1;
    p += strlen(text);
    while (*p && (*p < '0' || *p > '9'))
        p++;
    char *end;
    long v = strtol(p, &end, 10);
    return (end != p && strncmp(end, " ms", 3) == 0) ? v : -1;
}

/* The child's stderr after slow_task: the 300 ms blocker reported while it ran, then with its total. */
static void check_blocker_reported(void)
{
    cr_assert(exited_with(0), "child %s; stderr:\n%s", child.status_s, child.err);
    char running[512], held[512];
    cr_assert(line_with("has run for", running, sizeof running), "no report while it ran; stderr:\n%s", child.err);
    cr_assert(strstr(running, "sleepy-blocker") != NULL, "the report does not name the task: %s", running);
    cr_assert(strncmp(running, "weft: ", 6) == 0, "not a weft line: %s", running);
    long ran = ms_after(running, "has run for");
    cr_assert(ran >= 100, "reported after %ld ms; want from the 100 ms limit on: %s", ran, running);
    /* While it ran: before the task itself got past its blocking call (the order of the lines, not a
     * bound on the time, which a loaded machine can stretch). */
    const char *done = strstr(child.err, "MARK blocker-done");
    cr_assert(done != NULL, "stderr:\n%s", child.err);
    cr_assert(strstr(child.err, "has run for") < done, "reported only after the task let go:\n%s", child.err);
    /* And after, with the total. */
    cr_assert(line_with("held the loop for about", held, sizeof held), "no total after it let go; stderr:\n%s",
              child.err);
    cr_assert(strstr(held, "sleepy-blocker") != NULL, "the total does not name the task: %s", held);
    long total = ms_after(held, "held the loop for about");
    cr_assert(total >= 200 && total < 10000, "held the loop for about %ld ms, want about 300: %s", total, held);
    cr_assert(strstr(child.err, "held the loop for about") > strstr(child.err, "has run for"),
              "the total came before the report:\n%s", child.err);
    /* Once each. */
    cr_assert(strstr(strstr(child.err, "has run for") + 1, "has run for") == NULL, "reported twice:\n%s", child.err);
}

Test(diag, task_blocking_the_loop_300ms_is_reported_by_name_while_it_runs_and_after)
{
    unsetenv("WEFT_SLOW_MS");
    run_scenario("slow_task");
    check_blocker_reported();
}

/* A sleeping loop blocks nothing: its watchdog parks rather than looking 40 times a second (4 looks
 * to see the loop asleep, then one wakeup a second at most), and the loop's next wake wakes it in
 * time to report a blocker as it runs. */
Test(diag, watchdog_parks_while_the_loop_sleeps_and_still_reports_the_next_blocker)
{
    unsetenv("WEFT_SLOW_MS");
    run_scenario("slow_after_idle");
    const char *m = strstr(child.err, "MARK idle-wakeups ");
    cr_assert(m != NULL, "child %s; stderr:\n%s", child.status_s, child.err);
    long wakeups = strtol(m + strlen("MARK idle-wakeups "), NULL, 10);
    cr_assert(wakeups >= 0 && wakeups <= 8, "the watchdog woke %ld times in a second of idling; stderr:\n%s", wakeups,
              child.err);
    check_blocker_reported();
}

Test(diag, task_blocking_300ms_is_not_reported_with_weft_slow_ms_1000)
{
    setenv("WEFT_SLOW_MS", "1000", 1);
    run_scenario("slow_task");
    cr_assert(exited_with(0), "child %s; stderr:\n%s", child.status_s, child.err);
    ERR_LACKS("has run for");
    ERR_LACKS("held the loop");
    ERR_LACKS("sleepy-blocker");
    ERR_LACKS("weft: ");
}

/* ---- a loop thread kept off its CPU is not a task holding the loop ---------------------------------- */

/*
 * The loop's thread is pinned beside threads that spin on its CPU, and its task computes without
 * suspending. The task's own time is the wall time less what the kernel says the thread waited for
 * its CPU (its schedstat): that, and not the wall time, is what the watchdog may charge. The test
 * takes the kernel's figure itself, so a host that takes the whole virtual CPU away (steal time, which
 * no thread's schedstat shows) makes the task's own time longer for the test and the watchdog alike.
 */
struct crowd {
    int spinners;         /* threads spinning on the loop thread's CPU */
    atomic_bool stop;
    uint64_t spin_cpu_ns; /* the task's CPU time to spend without suspending */
    uint64_t wall_ns;     /* the wall time that took */
    uint64_t waited_ns;   /* of which the thread waited for its CPU, by its schedstat */
};

enum { CROWD_MAX = 4 };

static void pin_to(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    cr_assert(pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0, "pinning to CPU %d", cpu);
}

static void *crowd_spinner(void *arg)
{
    struct crowd *c = arg;
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed))
        ;
    return NULL;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This thread's time spent waiting for a CPU so far, by the kernel. */
static uint64_t thread_run_delay_ns(void)
{
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    cr_assert(f != NULL, "/proc/thread-self/schedstat: %s", strerror(errno));
    unsigned long long on_cpu, waited;
    int n = fscanf(f, "%llu %llu", &on_cpu, &waited);
    fclose(f);
    cr_assert(n == 2, "/proc/thread-self/schedstat: unreadable");
    return waited;
}

/* Pins the loop's thread, and the spinners it starts (they inherit the mask), to its CPU, then
 * computes without suspending until the task has had spin_cpu_ns of CPU. */
static intptr_t crowded_main(void *arg)
{
    struct crowd *c = arg;
    cpu_set_t was;
    cr_assert(pthread_getaffinity_np(pthread_self(), sizeof was, &was) == 0);
    pin_to(sched_getcpu());
    pthread_t spinners[CROWD_MAX];
    for (int i = 0; i < c->spinners; i++)
        cr_assert(pthread_create(&spinners[i], NULL, crowd_spinner, c) == 0);
    uint64_t start = mono_ns(), cpu_start = thread_cpu_ns(), waited_start = thread_run_delay_ns();
    while (thread_cpu_ns() - cpu_start < c->spin_cpu_ns)
        ;
    c->waited_ns = thread_run_delay_ns() - waited_start;
    c->wall_ns = mono_ns() - start;
    atomic_store(&c->stop, true);
    for (int i = 0; i < c->spinners; i++)
        pthread_join(spinners[i], NULL);
    pthread_setaffinity_np(pthread_self(), sizeof was, &was);
    return 0;
}

static const char *run_crowded(int spinners, uint64_t spin_cpu_ns, struct crowd *c)
{
    unsetenv("WEFT_SLOW_MS");
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.slow_task_ns = MS(100);
    c->spinners = spinners;
    c->spin_cpu_ns = spin_cpu_ns;
    atomic_init(&c->stop, false);
    stderr_capture_begin();
    weft_loop *l = weft_loop_new(&cfg);
    intptr_t result = -1;
    int r = l ? weft_loop_run(l, crowded_main, c, &result) : -errno;
    weft_loop_free(l);
    const char *err = stderr_capture_end();
    cr_assert(r == 0 && result == 0, "weft_loop_run: %d, main: %ld; stderr:\n%s", r, (long)result, err);
    return err;
}

#define OWN_MS(c) ((long long)(((c).wall_ns - (c).waited_ns) / 1000000))

/* Four spinners share the loop thread's CPU: a task that computes for 30 ms takes about 150 ms of
 * wall time, past the 100 ms limit, yet it held the loop for about 30; the rest was the kernel's
 * choice. A try whose own time came near the limit anyway (the host took the virtual CPU) proves
 * nothing either way and is made again. */
Test(diag, a_task_whose_thread_waits_for_its_cpu_is_not_charged_for_the_wait)
{
    struct crowd c;
    const char *err = NULL;
    for (int tries = 0; tries < 5; tries++) {
        err = run_crowded(4, MS(30), &c);
        if (OWN_MS(c) < 70)
            break;
    }
    cr_assert(OWN_MS(c) < 70, "five tries took %lld ms of the task's own time each for 30 ms of CPU: nothing to tell",
              OWN_MS(c));
    cr_assert(c.wall_ns > MS(120), "the crowd stretched 30 ms of CPU to only %llu ms: nothing to tell",
              (unsigned long long)(c.wall_ns / 1000000));
    cr_assert(strstr(err, "has run for") == NULL && strstr(err, "held the loop") == NULL,
              "a task that held the loop for %lld ms, stretched to %llu ms by other threads on its CPU, was "
              "reported:\n%s",
              OWN_MS(c), (unsigned long long)(c.wall_ns / 1000000), err);
}

/* Two spinners, and a task that computes for 250 ms: it is reported, and its total is its own time
 * (about 250 ms), not the wall time (about 750). */
Test(diag, a_task_computing_past_the_limit_is_reported_beside_a_crowd_with_its_own_time)
{
    struct crowd c;
    const char *err = run_crowded(2, MS(250), &c);
    cr_assert(c.waited_ns > MS(200), "the crowd kept the thread waiting for only %llu ms: nothing to tell",
              (unsigned long long)(c.waited_ns / 1000000));
    CAPTURED_HAS(err, "task 'main' (#1) has run for");
    const char *held = strstr(err, "held the loop for about ");
    cr_assert(held != NULL, "no total; stderr:\n%s", err);
    long long ms = strtoll(held + strlen("held the loop for about "), NULL, 10);
    /* The watchdog starts its clock when it sees the task (up to a quarter of the limit late) and sees
     * the end as late; a wait the thread is in when the task ends is counted when it ends. */
    cr_assert(ms >= OWN_MS(c) - 50 && ms <= OWN_MS(c) + 50,
              "held the loop for about %lld ms: want its own time, %lld ms, and not the %llu ms of wall time", ms,
              OWN_MS(c), (unsigned long long)(c.wall_ns / 1000000));
}

Test(diag, future_failed_and_freed_without_being_awaited_is_reported)
{
    run_scenario("unawaited_error_future");
    cr_assert(exited_with(0), "child %s; stderr:\n%s", child.status_s, child.err);
    const char *quiet = strstr(child.err, "MARK quiet-part-done");
    const char *after = strstr(child.err, "MARK after-free");
    cr_assert(quiet != NULL && after != NULL, "stderr:\n%s", child.err);
    /* Awaited before being freed, or freed with a value: nothing to say. */
    const char *report = strstr(child.err, "weft: ");
    cr_assert(report != NULL, "the unawaited failed future was not reported:\n%s", child.err);
    cr_assert(report > quiet, "an awaited or successful future was reported:\n%s", child.err);
    cr_assert(report < after, "reported only later, not when the future was freed:\n%s", child.err);
    const char *err_text = strstr(report, strerror(EIO));
    cr_assert(err_text != NULL && err_text < after, "the report does not give the error:\n%s", child.err);
}

Test(diag, callback_blocking_the_loop_250ms_is_reported_by_name_while_it_runs_and_after)
{
    unsetenv("WEFT_SLOW_MS");
    run_scenario("slow_callback");
    cr_assert(exited_with(0), "child %s; stderr:\n%s", child.status_s, child.err);
    char running[512], held[512];
    cr_assert(line_with("has run for", running, sizeof running), "no report while it ran; stderr:\n%s", child.err);
    cr_assert(strstr(running, "callback weft_test_sleepy_callback()") != NULL, "the report does not name it: %s",
              running);
    long ran = ms_after(running, "has run for");
    /* From the limit on; no bound above: that it came while the callback still ran is what the order of
     * the lines says (before its MARK), and a loaded machine may run the watchdog late in that window. */
    cr_assert(ran >= 100, "reported after %ld ms; want from the 100 ms limit on: %s", ran, running);
    const char *done = strstr(child.err, "MARK callback-done");
    cr_assert(done != NULL && strstr(child.err, "has run for") < done, "not reported while it ran:\n%s", child.err);
    cr_assert(line_with("held the loop for about", held, sizeof held), "no total; stderr:\n%s", child.err);
    cr_assert(strstr(held, "weft_test_sleepy_callback") != NULL, "the total does not name it: %s", held);
    long total = ms_after(held, "held the loop for about");
    cr_assert(total >= 150 && total < 10000, "held the loop for about %ld ms, want about 250: %s", total, held);
}

Test(diag, an_async_request_failed_unawaited_is_reported_with_its_call_fd_and_task_on_both_backends)
{
    static const char *const backends[] = {"io_uring", "epoll"};
    for (size_t i = 0; i < 2; i++) {
        setenv("WEFT_BACKEND", backends[i], 1);
        run_scenario("unawaited_io");
        cr_assert(exited_with(0), "%s: child %s; stderr:\n%s", backends[i], child.status_s, child.err);
        char line[512];
        cr_assert(line_with("nobody awaited it", line, sizeof line), "%s: no report; stderr:\n%s", backends[i],
                  child.err);
        cr_assert(strstr(line, "read_async on fd 999 by task 'reader' (#") != NULL,
                  "%s: the report does not say the call, fd and task: %s", backends[i], line);
        cr_assert(strstr(line, strerror(EBADF)) != NULL, "%s: the report does not give the error: %s", backends[i],
                  line);
        cr_assert(strstr(child.err, "nobody awaited it") < strstr(child.err, "MARK after-free"),
                  "%s: reported only later:\n%s", backends[i], child.err);
    }
}

Test(diag, stack_overflow_names_the_task_on_io_uring_and_on_epoll)
{
    static const char *const backends[] = {"io_uring", "epoll"};
    for (size_t i = 0; i < 2; i++) {
        setenv("WEFT_BACKEND", backends[i], 1);
        run_scenario("overflow");
        cr_assert(WIFSIGNALED(child.status) && WTERMSIG(child.status) == SIGSEGV,
                  "%s: child %s, want killed by SIGSEGV; stderr:\n%s", backends[i], child.status_s, child.err);
        char line[512];
        cr_assert(line_with("deep-recurser", line, sizeof line), "%s: the task is not named; stderr:\n%s",
                  backends[i], child.err);
        cr_assert(strstr(line, "overflow") != NULL, "%s: the line naming the task does not say overflow: %s",
                  backends[i], line);
    }
}

/* ---- the version ------------------------------------------------------------------------------------ */

Test(diag, weft_version_is_the_headers_version_and_agrees_with_its_parts)
{
    /* The library under test is built from this tree, so it must report the header's version. */
    cr_assert_str_eq(weft_version(), WEFT_VERSION_STRING);
    char parts[64];
    snprintf(parts, sizeof parts, "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR, WEFT_VERSION_PATCH);
    cr_assert_str_eq(parts, WEFT_VERSION_STRING);
    EQ(WEFT_VERSION_NUMBER, WEFT_VERSION_MAJOR * 10000 + WEFT_VERSION_MINOR * 100 + WEFT_VERSION_PATCH);
}

/* ---- weft_tasks_dump ---------------------------------------------------------------------------- */

static intptr_t dump_sleeper(void *arg)
{
    (void)arg;
    return weft_sleep(SEC(10));
}

static intptr_t dump_reader(void *arg)
{
    char buf[64];
    return weft_recv((int)(intptr_t)arg, buf, sizeof buf, 0);
}

static intptr_t dump_event_waiter(void *arg)
{
    return weft_event_wait(arg);
}

static intptr_t dump_joiner(void *arg)
{
    return weft_join(arg);
}

/* The dump's text, and the line of the task named name in it (NULL if none). */
static const char *dump_line(const char *text, const char *name, char *line, size_t cap)
{
    char quoted[48];
    snprintf(quoted, sizeof quoted, "'%s'", name);
    const char *at = strstr(text, quoted);
    if (!at)
        return NULL;
    while (at > text && at[-1] != '\n')
        at--;
    size_t n = strcspn(at, "\n");
    snprintf(line, cap, "%.*s", (int)(n < cap ? n : cap - 1), at);
    return line;
}

static intptr_t dump_main(void *arg)
{
    (void)arg;
    int sv[2];
    EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    weft_event *ev = weft_event_new();
    cr_assert(ev);
    weft_task *sleeper = weft_spawn_named("sleeper", dump_sleeper, NULL);
    weft_task *reader = weft_spawn_named("reader", dump_reader, (void *)(intptr_t)sv[0]);
    weft_task *waiter = weft_spawn_named("waiter", dump_event_waiter, ev);
    weft_task *joiner = weft_spawn_named("joiner", dump_joiner, sleeper);
    cr_assert(sleeper && reader && waiter && joiner);
    weft_yield(); /* every task runs up to its wait */

    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    cr_assert(mem);
    int n = weft_tasks_dump(mem);
    fclose(mem);
    EQ(n, 5);
    char line[256], want[64];
    cr_assert(strstr(text, "5 tasks (1 running, 0 ready, 4 parked"), "dump:\n%s", text);
    cr_assert(strstr(text, weft_loop_backend(weft_loop_current())), "dump:\n%s", text);
    cr_assert(dump_line(text, "sleeper", line, sizeof line), "dump:\n%s", text);
    cr_assert(strstr(line, "parked for ") && strstr(line, "in weft_sleep, wakes in "), "%s", line);
    cr_assert(dump_line(text, "reader", line, sizeof line));
    snprintf(want, sizeof want, "in recv on fd %d (64 B)", sv[0]);
    cr_assert(strstr(line, want), "want \"%s\" in: %s", want, line);
    cr_assert(dump_line(text, "waiter", line, sizeof line));
    cr_assert(strstr(line, "in weft_event_wait"), "%s", line);
    cr_assert(dump_line(text, "joiner", line, sizeof line));
    cr_assert(strstr(line, "in join of task 'sleeper'"), "%s", line);
    /* The dumping task itself runs, and its stack has been touched. */
    cr_assert(strstr(text, "running"), "dump:\n%s", text);
    cr_assert(!strstr(text, "stack 0 of"), "a running or parked task shows no stack use:\n%s", text);
    free(text);

    EQ(weft_tasks_dump(NULL), -EINVAL);
    /* The joiner, cancelled, cancels the sleeper it joins and waits for it (the sleeper is its to
     * release). */
    weft_cancel(joiner);
    weft_cancel(reader);
    weft_event_set(ev);
    EQ(weft_join(joiner), -ECANCELED);
    EQ(weft_join(reader), -ECANCELED);
    EQ(weft_join(waiter), 0);
    weft_event_free(ev);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(diag, tasks_dump_names_each_task_its_state_and_what_it_waits_in)
{
    EQ(run(dump_main, NULL), 0);
    EQ(weft_tasks_dump(stderr), -EPERM);
}

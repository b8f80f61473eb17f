/*
 * The timeline trace (weft_config.trace_path, WEFT_TRACE, weft_trace_flush): each scenario runs on a
 * loop that traces to a fresh file; tests/trace_check.py checks the file is a valid Chrome Trace Event
 * file (strict JSON, rows named, slices not overlapping on a row, async spans paired, events in order
 * of time, counts that add up) and prints its events one per line, which the tests read back to check
 * names, values and the order of events.
 */
#include "common.h"

#include <sys/socket.h>
#include <sys/syscall.h>

TestSuite(trace, .timeout = 60);

/* ---- running a traced loop and reading its file back ------------------------------------------- */

static char trace_file[64];

/* A fresh, empty file for the trace. trace_load removes it once read (a later write of the trace
 * makes it again). */
static const char *trace_file_new(void)
{
    snprintf(trace_file, sizeof trace_file, "/tmp/weft-trace-test-XXXXXX");
    int fd = mkstemp(trace_file);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    close(fd);
    return trace_file;
}

static weft_config traced_config(size_t events, uint64_t slow_task_ns)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.trace_path = trace_file_new();
    cfg.trace_events = events;
    cfg.slow_task_ns = slow_task_ns;
    return cfg;
}

/* Runs main_fn(arg) on a loop made from cfg; asserts it ran and main returned 0. */
static void traced_run_cfg(const weft_config *cfg, weft_fn main_fn, void *arg)
{
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    intptr_t result = INTPTR_MIN;
    EQ(weft_loop_run(l, main_fn, arg, &result), 0);
    EQ(result, 0);
    weft_loop_free(l);
}

static void traced_run(weft_fn main_fn, void *arg)
{
    weft_config cfg = traced_config(0, 0);
    traced_run_cfg(&cfg, main_fn, arg);
}

/* One event of the file, as trace_check.py prints it. */
typedef struct tev {
    char ph;
    uint64_t ts, dur;
    char row[96], name[160], args[512];
} tev;

#define TEV_MAX 20000
static tev tevs[TEV_MAX];
static size_t ntevs;
static char other_data[2048];
static char check_out[4 << 20];

/* Checks the file with trace_check.py, loads its events into tevs and removes the file. */
static void trace_load(const char *path)
{
    char err[4096];
    char *argv[] = {(char *)WEFT_PYTHON, (char *)WEFT_TRACE_CHECK, (char *)path, NULL};
    int status = run_program(argv, check_out, sizeof check_out, err, sizeof err, 30000);
    unlink(path);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s is not a valid trace: %s", path, err);
    cr_assert(strlen(check_out) < sizeof check_out - 1, "trace_check's output was cut");
    ntevs = 0;
    other_data[0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(check_out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "otherData\t", 10)) {
            snprintf(other_data, sizeof other_data, "%s", line + 10);
            continue;
        }
        cr_assert(ntevs < TEV_MAX, "more than %d events", TEV_MAX);
        tev *e = &tevs[ntevs++];
        char *field[6];
        char *p = line;
        for (int i = 0; i < 6; i++) {
            field[i] = p;
            p = i < 5 ? strchr(p, '\t') : NULL;
            if (i < 5) {
                cr_assert(p, "a line of trace_check with fewer than 6 fields: %s", field[0]);
                *p++ = '\0';
            }
        }
        e->ph = field[0][0];
        e->ts = strtoull(field[1], NULL, 10);
        e->dur = strtoull(field[2], NULL, 10);
        snprintf(e->row, sizeof e->row, "%s", field[3]);
        snprintf(e->name, sizeof e->name, "%s", field[4]);
        snprintf(e->args, sizeof e->args, "%s", field[5]);
    }
}

/* The first event at or after index from with that phase whose row and args contain the given texts
 * and whose name starts with name (NULL: any); -1 if none. */
static ssize_t tev_find_from(size_t from, char ph, const char *row, const char *name, const char *args)
{
    for (size_t i = from; i < ntevs; i++) {
        const tev *e = &tevs[i];
        if (e->ph == ph && (!row || strstr(e->row, row)) && (!name || !strncmp(e->name, name, strlen(name))) &&
            (!args || strstr(e->args, args)))
            return (ssize_t)i;
    }
    return -1;
}

static size_t tev_count(char ph, const char *row, const char *name, const char *args)
{
    size_t n = 0;
    for (ssize_t i = tev_find_from(0, ph, row, name, args); i >= 0; i = tev_find_from((size_t)i + 1, ph, row, name, args))
        n++;
    return n;
}

/* The events loaded, one a line, for a failure's message (the first ones, up to 8000 bytes). */
static const char *tev_list(void)
{
    static char text[8192];
    size_t used = 0;
    text[0] = '\0';
    for (size_t i = 0; i < ntevs && used + 400 < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%c %" PRIu64 " +%" PRIu64 " [%s] %s %s\n",
                                 tevs[i].ph, tevs[i].ts, tevs[i].dur, tevs[i].row, tevs[i].name, tevs[i].args);
    return text;
}

/* The event that must be there. */
static const tev *tev_get(char ph, const char *row, const char *name, const char *args)
{
    ssize_t i = tev_find_from(0, ph, row, name, args);
    cr_assert(i >= 0, "no '%c' event on a row with \"%s\" named \"%s\" with args \"%s\"; the trace:\n%s", ph,
              row ? row : "*", name ? name : "*", args ? args : "*", tev_list());
    return &tevs[i];
}

/* The number after "key": in e's args. */
static long long tev_arg(const tev *e, const char *key)
{
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\": ", key);
    const char *at = strstr(e->args, quoted);
    cr_assert(at, "no %s in %s", key, e->args);
    return strtoll(at + strlen(quoted), NULL, 10);
}

/* ---- tasks: rows, why each parked, I/O, wakes ---------------------------------------------------- */

static int pair_fds[2];

static intptr_t sleeper(void *arg)
{
    (void)arg;
    return weft_sleep(MS(5)) == 0 ? 11 : -1;
}

static intptr_t reader(void *arg)
{
    (void)arg;
    char buf[64];
    return weft_recv(pair_fds[0], buf, sizeof buf, 0);
}

static intptr_t chan_waiter(void *arg)
{
    void *item = NULL;
    int r = weft_chan_recv(arg, &item);
    return r < 0 ? r : (intptr_t)item;
}

static intptr_t joiner(void *arg)
{
    return weft_join(arg);
}

static intptr_t tasks_main(void *arg)
{
    (void)arg;
    EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair_fds), 0);
    weft_chan *c = weft_chan_new(1);
    cr_assert(c);
    weft_task *s = weft_spawn_named("sleeper", sleeper, NULL);
    weft_task *r = weft_spawn_named("reader", reader, NULL);
    weft_task *w = weft_spawn_named("waiter", chan_waiter, c);
    weft_task *j = weft_spawn_named("joiner", joiner, s);
    cr_assert(s && r && w && j);
    weft_yield(); /* each runs up to its wait */
    EQ(weft_send(pair_fds[1], "hello", 5, 0), 5);
    EQ(weft_chan_send(c, (void *)7), 0);
    EQ(weft_join(r), 5);
    EQ(weft_join(w), 7);
    EQ(weft_join(j), 11);
    weft_chan_free(c);
    close(pair_fds[0]);
    close(pair_fds[1]);
    return 0;
}

Test(trace, names_each_task_row_and_says_what_each_waited_in)
{
    traced_run(tasks_main, NULL);
    trace_load(trace_file);
    const char *names[] = {"task 'main' (#1)", "task 'sleeper' (#", "task 'reader' (#", "task 'waiter' (#",
                           "task 'joiner' (#"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const tev *spawned = tev_get('i', names[i], "spawned", NULL);
        const tev *run = tev_get('X', names[i], "run", NULL);
        const tev *ended = tev_get('i', names[i], "ended", NULL);
        cr_assert(spawned->ts <= run->ts && run->ts + run->dur <= ended->ts + 1000, "%s: spawn, run, end out of order",
                  names[i]);
        if (i)
            cr_assert(strstr(spawned->args, "\"by\": \"'main' (#1)\""), "%s spawned %s", names[i], spawned->args);
    }
    char want[64];
    snprintf(want, sizeof want, "recv on fd %d (64 B)", pair_fds[0]);
    tev_get('X', "'sleeper'", "weft_sleep", NULL);
    tev_get('X', "'reader'", want, NULL);
    tev_get('X', "'waiter'", "weft_chan_recv", NULL);
    tev_get('X', "'joiner'", "join of task 'sleeper' (#", NULL);
    tev_get('X', "'main'", "join of task 'reader' (#", NULL);
    /* The run before each wait says the same. */
    tev_get('X', "'reader'", "run", want);
    tev_get('X', "'sleeper'", "run", "parked in weft_sleep");
    /* Results, as each task returned them. */
    tev_get('i', "'sleeper'", "ended", "\"result\": 11");
    tev_get('i', "'reader'", "ended", "\"result\": 5");
    tev_get('i', "'waiter'", "ended", "\"result\": 7");
    tev_get('i', "'joiner'", "ended", "\"result\": 11");
    /* The sleeper's timer woke it, and it then waited to run ("ready") before running again. */
    const tev *timer = tev_get('i', "'sleeper'", "timer: sleep ended", NULL);
    const tev *wait = tev_get('X', "'sleeper'", "weft_sleep", NULL);
    cr_assert(wait->ts + wait->dur >= timer->ts && wait->ts + wait->dur - timer->ts < MS(5),
              "the sleep's wait ends at its timer");
    ssize_t ready = tev_find_from((size_t)(timer - tevs), 'X', "'sleeper'", "ready", NULL);
    cr_assert(ready >= 0, "no ready slice after the sleeper's timer");
}

Test(trace, shows_each_request_from_submission_to_completion_with_fd_size_and_result)
{
    traced_run(tasks_main, NULL);
    trace_load(trace_file);
    char fd_arg[32];
    snprintf(fd_arg, sizeof fd_arg, "\"fd\": %d", pair_fds[0]);
    const tev *rb = tev_get('b', "'reader'", "recv", fd_arg);
    cr_assert(strstr(rb->args, "\"len\": 64") && strstr(rb->args, "\"call\": \"own\"") &&
                  strstr(rb->args, "\"task\": \"'reader' (#"),
              "recv's begin: %s", rb->args);
    const tev *re = tev_get('e', "'reader'", "recv", "\"res\": 5");
    snprintf(fd_arg, sizeof fd_arg, "\"fd\": %d", pair_fds[1]);
    const tev *sb = tev_get('b', "'main'", "send", fd_arg);
    const tev *se = tev_get('e', "'main'", "send", "\"res\": 5");
    cr_assert(strstr(sb->args, "\"len\": 5"), "send's begin: %s", sb->args);
    /* The recv was made first, and completed only once the send had been made. */
    cr_assert(rb->ts < sb->ts, "recv submitted at %" PRIu64 ", send at %" PRIu64, rb->ts, sb->ts);
    cr_assert(re->ts >= sb->ts && se->ts >= sb->ts, "a completion before the send was made");
    /* The reader's wait for its recv lies between the recv's submission and its completion (with the
     * wake after it). */
    char want[64];
    snprintf(want, sizeof want, "recv on fd %d (64 B)", pair_fds[0]);
    const tev *wait = tev_get('X', "'reader'", want, NULL);
    cr_assert(wait->ts >= rb->ts && wait->ts + wait->dur >= re->ts, "the wait [%" PRIu64 ", +%" PRIu64 "] and the "
              "recv [%" PRIu64 ", %" PRIu64 "]", wait->ts, wait->dur, rb->ts, re->ts);
}

/* ---- the loop's row: polls, sleeps, timers and callbacks ----------------------------------------- */

static bool later_ran;

static void later_cb(void *arg)
{
    (void)arg;
    later_ran = true;
}

static const weft_future *awaited;

static intptr_t sender(void *arg)
{
    (void)arg;
    return weft_send(pair_fds[1], "abc", 3, 0);
}

static intptr_t loop_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        EQ(weft_nop(), 0);
    EQ(weft_call_later(MS(1), later_cb, NULL, NULL), 0);
    EQ(weft_sleep(MS(4)), 0);
    cr_assert(later_ran);
    EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair_fds), 0);
    char buf[16];
    weft_future *f = weft_recv_async(pair_fds[0], buf, sizeof buf, 0);
    cr_assert(f);
    awaited = f;
    /* The data comes from another task, which starts only once main waits. */
    weft_task *s = weft_spawn_named("sender", sender, NULL);
    cr_assert(s);
    EQ(weft_await(f), 3);
    EQ(weft_join(s), 3);
    weft_future_free(f);
    close(pair_fds[0]);
    close(pair_fds[1]);
    return 0;
}

Test(trace, shows_each_poll_of_the_loop_its_sleeps_timers_and_callbacks)
{
    traced_run(loop_main, NULL);
    trace_load(trace_file);
    EQ(tev_count('b', "'main'", "nop", NULL), 3);
    EQ(tev_count('e', "'main'", "nop", "\"res\": 0"), 3);
    /* The 4 ms sleep: the loop waits in the kernel with the next timer as its timeout. */
    const tev *timer = tev_get('i', "loop", "timer: call_later", "\"fn\"");
    const tev *callback = tev_get('X', "loop", "callback", "\"fn\"");
    cr_assert(callback->ts >= timer->ts, "the callback ran before its timer fired");
    bool slept = false;
    for (ssize_t i = tev_find_from(0, 'X', "loop", "sleep", NULL); i >= 0;
         i = tev_find_from((size_t)i + 1, 'X', "loop", "sleep", NULL)) {
        if (strstr(tevs[i].args, "\"timeout_us\": null"))
            continue; /* no timer armed: a wait with no limit, for the recv */
        long long timeout = tev_arg(&tevs[i], "timeout_us");
        cr_assert(timeout > 0 && timeout <= 4000, "a sleep with timeout %lld us: %s", timeout, tevs[i].args);
        slept |= tevs[i].dur >= MS(1) / 2;
    }
    cr_assert(slept, "no sleep of the loop lasted");
    /* What each poll submitted and reaped adds up to the requests: on io_uring every request's
     * completion is reaped by a poll (the nops, the recv, the send), and by default each is submitted
     * by one too (with WEFT_SUBMIT_BATCH, the eager setup, they are handed over as they are made); on
     * epoll they complete in the call itself, and a poll takes only the readiness that completes the
     * recv. */
    long long submitted = 0, reaped = 0;
    for (size_t i = 0; i < ntevs; i++)
        if (tevs[i].ph == 'X' && strstr(tevs[i].row, "loop") &&
            (!strcmp(tevs[i].name, "poll") || !strcmp(tevs[i].name, "sleep"))) {
            submitted += tev_arg(&tevs[i], "submitted");
            reaped += tev_arg(&tevs[i], "reaped");
            cr_assert(tev_arg(&tevs[i], "syscalls") >= 0);
        }
    if (!strcmp(backend_env(), "io_uring"))
        cr_assert((submitted >= 5 || getenv("WEFT_SUBMIT_BATCH")) && reaped >= 5, "submitted %lld, reaped %lld",
                  submitted, reaped);
    else
        cr_assert(submitted == 0 && reaped >= 1, "submitted %lld, reaped %lld", submitted, reaped);
    /* The _async recv, made by main and awaited by it. */
    const tev *rb = tev_get('b', "'main'", "recv", "\"call\": \"_async\"");
    cr_assert(strstr(rb->args, "\"len\": 16"), "%s", rb->args);
    tev_get('e', "'main'", "recv", "\"res\": 3");
    /* The future awaited, by its address. */
    char future[48];
    snprintf(future, sizeof future, "\"future\": \"%p\"", (void *)awaited);
    tev_get('X', "'main'", "weft_await of a future", future);
    tev_get('e', "'sender'", "send", "\"res\": 3");
}

/* ---- executor jobs on their worker threads' rows -------------------------------------------------- */

static _Atomic pid_t job_thread;

static intptr_t job_fn(void *arg)
{
    (void)arg;
    job_thread = (pid_t)syscall(SYS_gettid);
    return 42;
}

static intptr_t offloader(void *arg)
{
    (void)arg;
    return weft_offload(job_fn, NULL);
}

static intptr_t exec_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_named("offloader", offloader, NULL);
    cr_assert(t);
    EQ(weft_join(t), 42);
    /* A regular file's read: on epoll the executor runs it as a blocking call. */
    char path[] = "/tmp/weft-trace-read-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    EQ(write(fd, "0123456789", 10), 10);
    char buf[10];
    EQ(weft_read(fd, buf, sizeof buf, 0), 10);
    close(fd);
    return 0;
}

Test(trace, puts_each_executor_job_on_its_worker_threads_row)
{
    traced_run(exec_main, NULL);
    trace_load(trace_file);
    char row[48];
    snprintf(row, sizeof row, "executor thread %d", (int)job_thread);
    const tev *job = tev_get('X', row, "weft_offload", "\"task\": \"'offloader' (#");
    EQ(tev_arg(job, "result"), 42);
    cr_assert(strstr(job->args, "\"queued_us\": "), "%s", job->args);
    /* The job started once its task had queued it (a worker on the other CPU may start it before the
     * task has parked) and ended before the task's wait for it did. */
    const tev *run = tev_get('X', "'offloader'", "run", "parked in weft_offload (a job on the executor)");
    const tev *wait = tev_get('X', "'offloader'", "weft_offload (a job on the executor)", NULL);
    cr_assert(job->ts >= run->ts && job->ts + job->dur <= wait->ts + wait->dur,
              "job [%" PRIu64 ", +%" PRIu64 "] outside the run and wait [%" PRIu64 ", %" PRIu64 "]", job->ts, job->dur,
              run->ts, wait->ts + wait->dur);
    size_t blocking = tev_count('X', "executor thread", "read (blocking call)", "\"result\": 10");
    if (!strcmp(backend_env(), "epoll"))
        EQ(blocking, 1);
    else
        EQ(blocking, 0); /* io_uring reads the file itself */
    tev_get('e', "'main'", "read", "\"res\": 10");
}

/* ---- the watchdog's stalls ----------------------------------------------------------------------- */

static intptr_t spinner(void *arg)
{
    (void)arg;
    uint64_t until = weft_now() + MS(150);
    while (weft_now() < until)
        ;
    return 0;
}

static intptr_t stall_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_named("spinner", spinner, NULL);
    cr_assert(t);
    EQ(weft_join(t), 0);
    return 0;
}

Test(trace, marks_the_watchdogs_stall_report_on_the_stalling_tasks_row)
{
    weft_config cfg = traced_config(0, MS(20));
    stderr_capture_begin();
    traced_run_cfg(&cfg, stall_main, NULL);
    const char *said = stderr_capture_end();
    CAPTURED_HAS(said, "task 'spinner'");
    trace_load(trace_file);
    const tev *stall = tev_get('i', "'spinner'", "stall", "\"who\": \"task 'spinner' (#");
    EQ(tev_arg(stall, "limit_ms"), 20);
    cr_assert(tev_arg(stall, "running_ms") >= 20, "%s", stall->args);
    cr_assert(strstr(stall->args, "blocking the loop"), "%s", stall->args);
    /* It lies within the run that stalled the loop, which lasted the whole spin. */
    const tev *run = tev_get('X', "'spinner'", "run", "ended");
    /* (The trace's clock is the TSC scaled to nanoseconds at the rate measured over the run: a few
     * microseconds in 150 ms may come out differently from the spinner's clock_gettime.) */
    cr_assert(run->dur >= MS(145), "the spinner's run lasted %" PRIu64 " ns", run->dur);
    cr_assert(stall->ts >= run->ts + MS(20) && stall->ts <= run->ts + run->dur,
              "the stall at %" PRIu64 " is not within the run [%" PRIu64 ", +%" PRIu64 "]", stall->ts, run->ts, run->dur);
    cr_assert(strstr(other_data, "\"stall_reports\": 1"), "%s", other_data);
}

/* ---- bounded memory --------------------------------------------------------------------------- */

static intptr_t yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 500; i++)
        weft_yield();
    return 0;
}

static intptr_t ring_main(void *arg)
{
    (void)arg;
    weft_task *a = weft_spawn_named("yielder", yielder, NULL);
    weft_task *b = weft_spawn_named("yielder", yielder, NULL);
    EQ(weft_join(a), 0);
    EQ(weft_join(b), 0);
    return 0;
}

Test(trace, keeps_the_newest_events_of_a_full_ring_and_says_how_many_it_dropped)
{
    weft_config cfg = traced_config(64, 0);
    traced_run_cfg(&cfg, ring_main, NULL);
    trace_load(trace_file);
    cr_assert(strstr(other_data, "\"events_kept\": 64,") && strstr(other_data, "\"ring_events\": 64,"), "%s",
              other_data);
    const char *at = strstr(other_data, "\"events_dropped\": ");
    cr_assert(at);
    long long dropped = strtoll(at + strlen("\"events_dropped\": "), NULL, 10);
    cr_assert(dropped > 1000, "%lld dropped: two tasks yielding 500 times each record thousands", dropped);
    char note[96];
    snprintf(note, sizeof note, "%lld earlier events dropped (the ring holds 64)", dropped);
    const tev *first = tev_get('i', NULL, note, NULL);
    cr_assert(first == &tevs[0] || first->ts == tevs[0].ts, "the note is not at the start of what was kept");
    /* The newest events are the ones kept: main's end is there, and its first run is not. */
    tev_get('i', "'main'", "ended", "\"result\": 0");
    EQ(tev_count('i', "'main'", "spawned", NULL), 0);
    /* Each yield is a run that ends "yielded", then a stretch ready to run. */
    tev_get('X', "'yielder'", "run", "yielded");
    tev_get('X', "'yielder'", "ready", NULL);
}

static intptr_t burst_main(void *arg)
{
    (void)arg;
    EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair_fds), 0);
    weft_future *fs[20];
    char buf[20];
    for (int i = 0; i < 20; i++)
        cr_assert((fs[i] = weft_recv_async(pair_fds[0], &buf[i], 1, 0)) != NULL);
    /* 20 requests made without a switch: the ring of 16 has only their submissions now. */
    cr_assert(weft_trace_flush() > 0);
    trace_load(trace_file);
    tev_get('X', "'main'", "run", "is still running");
    EQ(tev_count('b', "'main'", "recv", "\"call\": \"_async\""), 16);
    EQ(tev_count('e', "'main'", "recv", "\"open\": true"), 16);
    for (int i = 0; i < 20; i++)
        weft_future_free(fs[i]);
    close(pair_fds[0]);
    close(pair_fds[1]);
    return 0;
}

Test(trace, a_flush_with_the_ring_full_of_one_runs_requests_still_shows_that_run_and_them_in_flight)
{
    weft_config cfg = traced_config(16, UINT64_MAX);
    traced_run_cfg(&cfg, burst_main, NULL);
    unlink(trace_file); /* written again as the loop ended */
}

/* ---- flushing on demand ---------------------------------------------------------------------------- */

static intptr_t flush_main(void *arg)
{
    (void)arg;
    EQ(weft_sleep(MS(1)), 0);
    int n = weft_trace_flush();
    cr_assert(n > 0, "weft_trace_flush: %d (%s)", n, res_name(n));
    trace_load(trace_file);
    /* main is running now: its run is open, and it has not ended. */
    tev_get('X', "'main'", "run", "is still running");
    cr_assert(tev_count('i', "'main'", "ended", NULL) == 0, "%s", tev_list());
    tev_get('X', "'main'", "weft_sleep", NULL);
    return 0;
}

Test(trace, flush_writes_the_file_now_and_recording_goes_on)
{
    /* No watchdog: checking the file from inside the task holds the loop on purpose. */
    weft_config cfg = traced_config(0, UINT64_MAX);
    traced_run_cfg(&cfg, flush_main, NULL);
    trace_load(trace_file);
    tev_get('i', "'main'", "ended", "\"result\": 0");
    EQ(tev_count('X', "'main'", "run", "is still running"), 0);
}

static intptr_t flush_untraced(void *arg)
{
    (void)arg;
    EQ(weft_trace_flush(), -ENOENT);
    return 0;
}

Test(trace, flush_is_enoent_on_a_loop_without_a_trace_and_eperm_outside_a_loop)
{
    EQ(weft_trace_flush(), -EPERM);
    EQ(run(flush_untraced, NULL), 0);
}

/* ---- bad input ------------------------------------------------------------------------------------ */

Test(trace, a_path_that_cannot_be_written_fails_loop_new_with_opens_errno_and_says_why)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.trace_path = "/nonexistent-weft-dir/trace.json";
    stderr_capture_begin();
    NULL_WITH_ERRNO(weft_loop_new(&cfg), ENOENT);
    CAPTURED_HAS(stderr_capture_end(), "trace file \"/nonexistent-weft-dir/trace.json\"");

    cfg.trace_path = NULL;
    setenv("WEFT_TRACE", "/tmp", 1);
    stderr_capture_begin();
    NULL_WITH_ERRNO(weft_loop_new(&cfg), EISDIR);
    CAPTURED_HAS(stderr_capture_end(), "cannot be written");
    EQ(weft_run(return_arg, (void *)0, NULL), -EISDIR);
    unsetenv("WEFT_TRACE");
}

Test(trace, trace_events_out_of_range_or_not_a_number_is_einval_and_says_why)
{
    weft_config cfg = traced_config((size_t)1 << 25, 0);
    unlink(cfg.trace_path); /* the configuration is refused before the file would be made */
    stderr_capture_begin();
    NULL_WITH_ERRNO(weft_loop_new(&cfg), EINVAL);
    CAPTURED_HAS(stderr_capture_end(), "weft_config.trace_events is 33554432");
    cfg.trace_events = 0;
    setenv("WEFT_TRACE_EVENTS", "12q", 1);
    stderr_capture_begin();
    NULL_WITH_ERRNO(weft_loop_new(&cfg), EINVAL);
    CAPTURED_HAS(stderr_capture_end(), "WEFT_TRACE_EVENTS is \"12q\"");
    unsetenv("WEFT_TRACE_EVENTS");
}

static intptr_t odd_name_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_named("a\"b\\c\nd\xff\xc3\xa9", return_arg, (void *)3);
    cr_assert(t);
    EQ(weft_join(t), 3);
    return 0;
}

Test(trace, any_task_name_keeps_the_file_valid_json)
{
    traced_run(odd_name_main, NULL);
    trace_load(trace_file);
    /* trace_check prints a backslash in a row's name as \\ and a newline as \n; the byte that is not
     * UTF-8 became U+FFFD. */
    tev_get('i', "task 'a\"b\\\\c\\nd\xef\xbf\xbd\xc3\xa9' (#2)", "ended", "\"result\": 3");
}

/* ---- several loops ---------------------------------------------------------------------------------- */

static intptr_t cores_main(void *arg)
{
    (void)arg;
    return weft_sleep(MS(1));
}

Test(trace, each_loop_of_run_cores_writes_its_own_file)
{
    weft_config cfg = traced_config(0, 0);
    EQ(weft_run_cores(2, cores_main, NULL, &cfg), 0);
    trace_load(trace_file);
    cr_assert(strstr(other_data, "\"loop\": 0,"), "%s", other_data);
    tev_get('X', "'main'", "weft_sleep", NULL);
    char second[80];
    snprintf(second, sizeof second, "%s.1", trace_file);
    trace_load(second);
    cr_assert(strstr(other_data, "\"loop\": 1,"), "%s", other_data);
    tev_get('X', "'main'", "weft_sleep", NULL);
}

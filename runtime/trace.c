/*
 * The timeline trace (weft_config.trace_path, WEFT_TRACE): what the loop does, event by event, for a
 * Chrome Trace Event file that Perfetto and chrome://tracing open (trace_json.c writes it).
 *
 * The loop records into a ring of fixed-size events, on its own thread, with no lock and no
 * allocation: which task runs and why it stopped (the park's weft__park_info, as weft_tasks_dump says
 * it), wakes, each request from submission to completion, each poll of the backend (what it
 * submitted and reaped, whether it could sleep), callbacks, timers. Once the ring is full each new
 * event takes the oldest one's slot, so the trace always holds the latest stretch of the run and
 * counts what it dropped. The file is written when a run of the loop ends, and on weft_trace_flush.
 *
 * Two kinds of event come from other threads. An executor job's times are taken by its worker into
 * the job itself (weft__job_trace), which travels back to the loop with the result through the
 * remote list, and the loop records it when it lands: the hand-over orders it, no lock is needed.
 * The watchdog reports a stall while the loop is still stuck in it, so it cannot wait for the loop:
 * its reports go to a small ring of their own under a mutex, which the writer reads.
 *
 * Times are weft__park_clock() readings (the TSC on x86: a few nanoseconds where clock_gettime takes
 * tens, which was most of the cost of recording a switch), turned into CLOCK_MONOTONIC nanoseconds
 * when the file is written, at the rate measured between the trace's start and then; worker threads
 * read the same clock, which the kernel keeps in step across CPUs when it uses it as its clocksource.
 *
 * Off, tracing costs each hook one test of l->trace (NULL): no call, no store.
 */
#include "internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* 64 Ki events of 56 bytes: 3.5 MiB, about a second of a busy server, all of a short program. */
#define WEFT__TRACE_DEFAULT_EVENTS 65536

static pid_t thread_id(void)
{
    static WEFT__TLS pid_t tid;
    if (!tid)
        tid = (pid_t)syscall(SYS_gettid);
    return tid;
}

int weft__trace_new(weft_loop *l)
{
    const char *path = l->cfg.trace_path;
    if (!path)
        return 0;
    /* The file is made now, so a path that cannot be written is said before the program runs, not
     * found out when it ends. It is written over whole at each write. */
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        weft__log("trace file \"%.200s\" (WEFT_TRACE, weft_config.trace_path) cannot be written: %s\n", path,
                  strerror(err));
        return -err;
    }
    close(fd);
    weft__trace *tr = calloc(1, sizeof *tr);
    size_t cap = l->cfg.trace_events ? l->cfg.trace_events : WEFT__TRACE_DEFAULT_EVENTS;
    if (tr) {
        tr->path = strdup(path);
        tr->ring = malloc(cap * sizeof *tr->ring);
    }
    if (!tr || !tr->path || !tr->ring) {
        if (tr) {
            free(tr->path);
            free(tr->ring);
        }
        free(tr);
        weft__log("no memory for a trace of %zu events\n", cap);
        return -ENOMEM;
    }
    /* Touched now, so that recording never takes a page fault: one would cost the loop a microsecond
     * or more in the middle of what the trace is timing. */
    memset(tr->ring, 0, cap * sizeof *tr->ring);
    tr->cap = cap;
    tr->origin_clock = weft__park_clock();
    tr->origin = weft__now();
    pthread_mutex_init(&tr->stall_lock, NULL);
    l->trace = tr;
    return 0;
}

void weft__trace_free(weft_loop *l)
{
    weft__trace *tr = l->trace;
    if (!tr)
        return;
    pthread_mutex_destroy(&tr->stall_lock);
    free(tr->path);
    free(tr->ring);
    free(tr);
    l->trace = NULL;
}

void weft__trace_started(weft_loop *l)
{
    l->trace->loop_tid = thread_id();
    l->trace->running = NULL;
}

/* The next slot, taking the oldest event's once the ring is full. */
static inline weft__trace_ev *record(weft__trace *tr, uint8_t kind, uint64_t ts, uint64_t task)
{
    weft__trace_ev *ev = &tr->ring[tr->next];
    if (++tr->next == tr->cap)
        tr->next = 0;
    if (tr->len < tr->cap)
        tr->len++;
    tr->recorded++;
    ev->ts = ts;
    ev->task = task;
    ev->kind = kind;
    ev->why = 0;
    ev->opcode = 0;
    ev->park = 0;
    ev->fd = -1;
    memset(&ev->u, 0, sizeof ev->u);
    return ev;
}

static void record_park(weft__trace_ev *ev, const weft__park_info *p)
{
    ev->park = p->kind;
    ev->opcode = p->opcode;
    ev->fd = p->fd;
    ev->u.w[0] = p->len;
    ev->u.w[1] = p->task ? p->task->id : 0;
    ev->u.w[2] = (uint64_t)(uintptr_t)p->call;
    ev->u.w[3] = (uint64_t)(uintptr_t)p->obj;
}

/*
 * Every switch comes here (weft__note_switch). The trace keeps one run open, the running task's: a
 * switch closes it, saying why the task stopped, and opens the next task's. A task handed back to
 * itself (its own turn again, or the end of a wait in place) continues its run, and one that is
 * switched to while still parked (weft__loop_wait_here's bookkeeping, before another task is picked)
 * is not running at all.
 */
void weft__trace_switch(weft_loop *l, weft_task *next)
{
    weft__trace *tr = l->trace;
    weft_task *cur = tr->running;
    if (cur == next)
        return;
    uint64_t now = weft__park_clock();
    if (cur) {
        weft__trace_ev *ev = record(tr, WEFT__TR_STOP, now, cur->id);
        switch (cur->state) {
        case WEFT__PARKED: {
            weft__park_info p;
            weft__park_info_of(cur, &p);
            ev->why = WEFT__STOP_PARKED;
            record_park(ev, &p);
            break;
        }
        case WEFT__RUNNING:
            /* Still running but leaving the CPU to the loop: it waits in place for its own request. */
            ev->why = WEFT__STOP_IN_PLACE;
            if (tr->own_task == cur)
                record_park(ev, &tr->own_op);
            break;
        case WEFT__ENDED:
            ev->why = WEFT__STOP_ENDED;
            break;
        default:
            ev->why = WEFT__STOP_YIELDED;
            break;
        }
        tr->running = NULL;
    }
    if (next && next->state == WEFT__RUNNING) {
        record(tr, WEFT__TR_RUN, now, next->id);
        tr->running = next;
    }
}

void weft__trace_spawn(weft_loop *l, const weft_task *t)
{
    weft__trace_ev *ev = record(l->trace, WEFT__TR_SPAWN, weft__park_clock(), t->id);
    ev->u.w[0] = l->current ? l->current->id : 0;
}

void weft__trace_wake(weft_loop *l, const weft_task *t)
{
    record(l->trace, WEFT__TR_WAKE, weft__park_clock(), t->id);
}

/* A task's name goes with its end: a task the trace shows either ends within it or is still alive
 * when the file is written, and then the writer reads the name from the task itself. */
void weft__trace_end(weft_loop *l, const weft_task *t, intptr_t result)
{
    uint64_t now = weft__park_clock();
    weft__trace_ev *ev = record(l->trace, WEFT__TR_END, now, t->id);
    ev->u.w[0] = (uint64_t)result;
    if (t->name[0]) {
        ev = record(l->trace, WEFT__TR_NAME, now, t->id);
        memcpy(ev->u.name, t->name, sizeof ev->u.name);
        ev->u.name[sizeof ev->u.name - 1] = '\0';
    }
}

void weft__trace_io_begin(weft_loop *l, const weft__op *op)
{
    weft__trace *tr = l->trace;
    weft_task *by = op->task ? op->task : l->current;
    weft__trace_ev *ev = record(tr, WEFT__TR_IO_BEGIN, weft__park_clock(), by ? by->id : 0);
    ev->opcode = op->opcode;
    ev->fd = op->fd;
    ev->why = op->task != NULL;
    ev->u.w[0] = (uint64_t)(uintptr_t)op;
    ev->u.w[1] = op->len;
    if (op->task) {
        tr->own_task = op->task;
        weft__park_info_io(op, &tr->own_op);
    }
}

void weft__trace_io_end(weft_loop *l, const weft__op *op, int32_t res)
{
    weft__trace_ev *ev = record(l->trace, WEFT__TR_IO_END, weft__park_clock(), 0);
    ev->u.w[0] = (uint64_t)(uintptr_t)op;
    ev->u.w[1] = (uint64_t)(int64_t)res;
}

int weft__trace_poll(weft_loop *l, uint64_t timeout_ns)
{
    uint64_t begin = weft__park_clock();
    uint64_t submitted = l->stats.submissions, reaped = l->stats.completions, syscalls = l->stats.syscalls;
    int r = weft__backend_poll_now(l, timeout_ns);
    weft__trace_ev *ev = record(l->trace, WEFT__TR_POLL, weft__park_clock(), 0);
    ev->u.w[0] = begin;
    ev->u.w[1] = timeout_ns;
    ev->u.w[2] = (l->stats.submissions - submitted) << 32 | ((l->stats.completions - reaped) & 0xffffffffu);
    ev->u.w[3] = l->stats.syscalls - syscalls;
    return r;
}

/* A callback runs on the stack of the task leaving the CPU (or the loop's): that task's run is over. */
void weft__trace_callback(weft_loop *l, weft__runnable *r)
{
    weft__trace *tr = l->trace;
    weft__trace_switch(l, NULL);
    const void *fn = r->user_fn; /* r may be freed by its call */
    uint64_t begin = weft__park_clock();
    r->call(r);
    weft__trace_ev *ev = record(tr, WEFT__TR_CALLBACK, weft__park_clock(), 0);
    ev->u.w[0] = begin;
    ev->u.w[1] = (uint64_t)(uintptr_t)fn;
}

void weft__trace_timer(weft_loop *l, const weft_task *t, int why, const void *fn)
{
    weft__trace_ev *ev = record(l->trace, WEFT__TR_TIMER, weft__park_clock(), t ? t->id : 0);
    ev->why = (uint8_t)why;
    ev->u.w[1] = (uint64_t)(uintptr_t)fn;
}

void weft__trace_job_queued(weft_loop *l, weft__job_trace *jt)
{
    jt->on = true;
    jt->task = l->current ? l->current->id : 0;
    jt->queued = weft__park_clock();
}

void weft__trace_job_started(weft__job_trace *jt)
{
    jt->worker = thread_id();
    jt->started = weft__park_clock();
}

void weft__trace_job_ended(weft__job_trace *jt, intptr_t result)
{
    jt->ended = weft__park_clock();
    jt->result = result;
}

void weft__trace_job_landed(weft_loop *l, const weft__job_trace *jt, int kind, const void *op)
{
    if (!jt->started)
        return; /* cancelled before a worker took it: it never ran */
    weft__trace_ev *ev = record(l->trace, WEFT__TR_JOB, jt->started, jt->task);
    ev->why = (uint8_t)kind;
    ev->fd = jt->worker;
    ev->u.w[0] = jt->queued;
    ev->u.w[1] = jt->ended;
    ev->u.w[2] = (uint64_t)jt->result;
    ev->u.w[3] = (uint64_t)(uintptr_t)op;
}

void weft__trace_stall(weft_loop *l, uint64_t task, const void *fn, uint64_t since, uint64_t limit)
{
    weft__trace *tr = l->trace;
    uint64_t now = weft__park_clock(), now_ns = weft__now();
    pthread_mutex_lock(&tr->stall_lock);
    weft__trace_ev *ev = &tr->stalls[tr->stall_next];
    tr->stall_next = (tr->stall_next + 1) % WEFT__TRACE_STALLS;
    tr->stalls_seen++;
    memset(ev, 0, sizeof *ev);
    ev->ts = now;
    ev->task = task;
    ev->kind = WEFT__TR_STALL;
    ev->fd = -1;
    ev->u.w[0] = now_ns > since ? now_ns - since : 0;
    ev->u.w[1] = (uint64_t)(uintptr_t)fn;
    ev->u.w[2] = limit;
    pthread_mutex_unlock(&tr->stall_lock);
}

int weft_trace_flush(void)
{
    weft_loop *l = weft__tls_loop;
    if (!l)
        return -EPERM;
    if (!l->trace)
        return -ENOENT;
    return weft__trace_write(l);
}

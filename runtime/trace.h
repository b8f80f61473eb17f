/* trace.c, trace_json.c: the timeline trace (WEFT_TRACE). Part of internal.h; included through it. */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <sys/types.h>

struct weft__op;

/*
 * The loop records what it does into a ring of fixed-size events while weft_config.trace_path is set;
 * trace_json.c turns the ring into a Chrome Trace Event file. Recording never allocates and never
 * fails: once the ring is full, each new event takes the place of the oldest, which is counted as
 * dropped. Every hook in the core is one test of l->trace, which is NULL when tracing is off.
 */

/* What an event is (weft__trace_ev.kind), and what its fields hold. task is a task's id, 0 for none. */
enum weft__trace_kind {
    WEFT__TR_SPAWN,    /* task made; w[0]: the task that made it */
    WEFT__TR_RUN,      /* task starts running */
    WEFT__TR_STOP,     /* task stops running; why: weft__trace_stop; a park: its weft__park_info in
                          park (kind), opcode, fd, w[0] len, w[1] the task it refers to, w[2] the call,
                          w[3] the future awaited */
    WEFT__TR_WAKE,     /* task made ready by what it waited for */
    WEFT__TR_END,      /* task ended; w[0]: its result */
    WEFT__TR_NAME,     /* task's name, at its end: name */
    WEFT__TR_IO_BEGIN, /* a request made by task (0: outside a task): opcode, fd; why 1 for the task's
                          own call, 0 for an _async one; w[0] the op, w[1] its bytes (or iovecs...) */
    WEFT__TR_IO_END,   /* w[0] the op, w[1] its result */
    WEFT__TR_POLL,     /* ts: the end of a poll of the backend; w[0] its start, w[1] its timeout (0: none
                          given, UINT64_MAX: none), w[2] submitted << 32 | reaped, w[3] system calls */
    WEFT__TR_CALLBACK, /* ts: a callback's end; w[0] its start, w[1] its function */
    WEFT__TR_TIMER,    /* a timer fired for task (0: a weft_call_later): why 0 a sleep's end, 1 a
                          deadline, 2 a call_later; w[1] the call_later's function */
    WEFT__TR_JOB,      /* ts: a job's start on a worker; task: who queued it; why: weft__trace_job_kind;
                          fd: the worker's thread id; w[0] queued, w[1] ended, w[2] result, w[3] the op it
                          carries out (a request on the executor), else 0 */
    WEFT__TR_STALL,    /* the watchdog saw task (0: a callback) hold the loop: w[0] for how long, in ns
                          (its estimate), w[1] the callback's function, w[2] the limit */
};

/* Why a task stopped running (WEFT__TR_STOP's why). */
enum weft__trace_stop { WEFT__STOP_PARKED, WEFT__STOP_IN_PLACE, WEFT__STOP_YIELDED, WEFT__STOP_ENDED };

/* What a job on the executor is (WEFT__TR_JOB's why). */
enum weft__trace_job_kind { WEFT__JOB_OFFLOAD, WEFT__JOB_ASYNC, WEFT__JOB_IO };

typedef struct weft__trace_ev {
    uint64_t ts;     /* weft__park_clock(), as every time in the ring */
    uint64_t task;
    uint8_t kind;    /* weft__trace_kind */
    uint8_t why;
    uint8_t opcode;
    uint8_t park;    /* WEFT__TR_STOP of a parked task: its weft__park_kind */
    int32_t fd;
    union {
        uint64_t w[4];
        char name[32];
    } u;
} weft__trace_ev;

/* A job's part of the trace, filled on the worker and handed back to the loop with its result. */
typedef struct weft__job_trace {
    bool on;         /* made on a loop that traces */
    pid_t worker;    /* the thread that ran it */
    uint64_t task;   /* who queued it */
    uint64_t queued, started, ended;
    intptr_t result;
} weft__job_trace;

#define WEFT__TRACE_STALLS 64

typedef struct weft__trace {
    char *path;
    weft__trace_ev *ring;
    size_t cap, next, len; /* slots, the next to write, how many hold events */
    uint64_t recorded;     /* events recorded since the loop was made; recorded - len were dropped */
    uint64_t origin, origin_clock; /* weft__now() and weft__park_clock() when the loop was made */
    pid_t loop_tid;        /* the thread running the loop (its latest run) */
    weft_task *running;    /* the task whose run the trace has open, NULL for none */
    /* The request a task may wait for in place, without parking: the last one a task made itself. */
    weft_task *own_task;
    weft__park_info own_op;
    /* The watchdog's reports: from its thread, so under a lock, in a ring of their own. */
    pthread_mutex_t stall_lock;
    weft__trace_ev stalls[WEFT__TRACE_STALLS];
    size_t stall_next;
    uint64_t stalls_seen;
} weft__trace;

/* l's trace when cfg.trace_path is set: 0, or -errno said on stderr (the file cannot be made). */
int weft__trace_new(weft_loop *l);
void weft__trace_free(weft_loop *l);
/* A run of l begins on this thread. */
void weft__trace_started(weft_loop *l);
/* Writes the file from the ring (trace_json.c): the events written, or -errno said on stderr. */
int weft__trace_write(weft_loop *l);

/* The hooks, each called only when l->trace is set (weft__trace_switch, weft__trace_io_begin,
 * weft__trace_io_end and weft__trace_poll are declared in loop.h, where the hot paths call them). */
void weft__trace_spawn(weft_loop *l, const weft_task *t);
void weft__trace_wake(weft_loop *l, const weft_task *t);
void weft__trace_end(weft_loop *l, const weft_task *t, intptr_t result);
/* Runs the callback r, recorded. */
void weft__trace_callback(weft_loop *l, weft__runnable *r);
void weft__trace_timer(weft_loop *l, const weft_task *t, int why, const void *fn);
/* A job of l's: queued (loop thread), started and ended (its worker), landed back on the loop. */
void weft__trace_job_queued(weft_loop *l, weft__job_trace *jt);
void weft__trace_job_started(weft__job_trace *jt);
void weft__trace_job_ended(weft__job_trace *jt, intptr_t result);
void weft__trace_job_landed(weft_loop *l, const weft__job_trace *jt, int kind, const void *op);
/* From the watchdog's thread: task (0: the callback fn) has held the loop since since. */
void weft__trace_stall(weft_loop *l, uint64_t task, const void *fn, uint64_t since, uint64_t limit);

#endif /* WEFT_TRACE_H */

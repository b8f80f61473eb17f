/*
 * weft — fibers that block on futures, with io_uring completions resolving them.
 *
 * This header is the manual. Read it top to bottom: running a loop, tasks, futures, waiting on many,
 * and diagnostics.
 *
 * Conventions
 *   - A call returns a value >= 0 on success and a negative errno on failure, as liburing does.
 *     -ECANCELED: the calling task was cancelled. -ETIMEDOUT: a deadline passed. -EPERM: a suspending
 *     call was made outside a task. -EINVAL: detectable misuse. Functions returning a pointer return
 *     NULL and set errno.
 *   - A task result is an intptr_t: >= 0 is a value (a pointer may be cast into it), < 0 is -errno.
 *   - Time is uint64_t nanoseconds on CLOCK_MONOTONIC. Durations are relative, deadlines absolute.
 *   - "Suspends" means the call is only valid inside a task: the task parks and the loop runs others
 *     until the result is ready. Nothing suspends implicitly anywhere else.
 *   - Every call that suspends first checks the calling task's cancellation and deadline: a cancelled
 *     task gets -ECANCELED, one past its deadline -ETIMEDOUT, without parking.
 *   - Unless a function says otherwise, call it on the thread that runs the loop.
 */
#ifndef WEFT_H
#define WEFT_H

/* Everything the declarations below use, so that a file including only weft.h compiles: errno.h for
 * the -E... results the comments promise, the system headers for the I/O calls' types. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/select.h> /* sigset_t, also under strict C11 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "weft/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

/* ------------------------------------------------------------------------------------------------
 * Version
 *
 * weft/version.h (generated from the build's project version, installed beside this header) defines
 * WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR, WEFT_VERSION_PATCH, WEFT_VERSION_STRING ("0.1.0") and
 * WEFT_VERSION_NUMBER (MAJOR * 10000 + MINOR * 100 + PATCH, for #if): the version of the header a
 * program was compiled against. weft_version() is the version of the library it runs with, which a
 * shared library upgrade can make newer.
 * ------------------------------------------------------------------------------------------------ */

/* The running library's version, "MAJOR.MINOR.PATCH" (WEFT_VERSION_STRING of its own build). Never
 * NULL; a static string. Callable from any thread, before any loop exists. */
WEFT_API const char *weft_version(void);

typedef struct weft_loop weft_loop;
typedef struct weft_task weft_task;
typedef struct weft_future weft_future;
typedef struct weft_executor weft_executor;
typedef struct weft_group weft_group;
typedef struct weft_chan weft_chan;
typedef struct weft_event weft_event;
typedef struct weft_mutex weft_mutex;
typedef struct weft_sem weft_sem;
typedef struct weft_cond weft_cond;
typedef struct weft_barrier weft_barrier;
typedef struct weft_as_completed weft_as_completed;

/* The body of a task: receives the spawn argument, returns the task's result (>= 0 value, < 0 -errno). */
typedef intptr_t (*weft_fn)(void *arg);

/* ------------------------------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------------------------------ */

/*
 * Loop configuration. Zero-initialised means all defaults. Environment variables override fields:
 * WEFT_BACKEND, WEFT_RING_ENTRIES, WEFT_STACK_SIZE (bytes, or with a k, m or g suffix: KiB, MiB, GiB),
 * WEFT_EXECUTOR_THREADS, WEFT_EXECUTOR_QUEUE, WEFT_SLOW_MS, WEFT_IDLE_POLL_US (microseconds),
 * WEFT_SUBMIT_BATCH, WEFT_SEND_ZC_MIN (a size), WEFT_MIN_WAIT_US (microseconds), WEFT_WAIT_BATCH,
 * WEFT_TRACE (a path), WEFT_TRACE_EVENTS. A variable set to the empty string counts as unset; any
 * other number must be digits only (a size may end in its suffix): "-5", "abc", "12q" or " 12" are
 * errors, not ignored.
 *
 * Every value is checked when a loop is made: what weft cannot honour makes weft_loop_new fail with
 * EINVAL (weft_run returns -EINVAL) and one line on stderr naming the field or variable and why.
 * Backend names are matched exactly ("EPOLL" is refused, with a hint). The limits: ring_entries
 * at most 16384 (io_uring's 32768 submission and 65536 completion entries, with weft's completion
 * queue four times the submission queue), stack_size at most 1 GiB, executor_threads at most 1024,
 * executor_queue at most 16777216, submit_batch at most ring_entries, min_wait_ns at most 10 ms,
 * wait_batch at most 4 × ring_entries and only with min_wait_ns, trace_events at most 16777216; a
 * value in microseconds or milliseconds must fit 64 bits in nanoseconds. A stack size within bounds that this process still
 * cannot map (an address-space limit) fails with ENOMEM and a line that says so.
 *
 * Growing without breaking programs: later versions add fields at the end, and size says how much of
 * the structure the caller knows. size 0 (what `weft_config cfg = {0}` and designated initialisers
 * leave) means the fields of weft 0.1, backend to submit_batch, so such a program keeps working with
 * every later library, and any field added later keeps its default for it. A program that sets a
 * field added after 0.1 must say so: start from WEFT_CONFIG_INIT (`weft_config cfg = WEFT_CONFIG_INIT;`
 * then assign fields), or write `.size = sizeof(weft_config)` in its initialiser. A size larger than
 * the running library knows (a program built against a newer header, run with an older library) is
 * accepted when every field the library lacks is zero, and refused with E2BIG otherwise, so a
 * setting is never silently dropped; a size from 1 to below the 0.1 layout is EINVAL.
 */
typedef struct weft_config {
    size_t      size;             /* bytes of this structure the caller filled: 0 or sizeof(weft_config) */
    const char *backend;          /* "io_uring", "epoll", or NULL: io_uring, else epoll with the reason logged */
    unsigned    ring_entries;     /* submission queue entries; 0 = 256. The CQ gets four times as many. */
    size_t      stack_size;       /* usable bytes per task stack; 0 = 256 KiB. Rounded up to pages; at
                                     least 16 KiB (smaller sizes are raised to it), at most 1 GiB. */
    unsigned    executor_threads; /* threads of the default executor; 0 = number of CPUs */
    uint64_t    slow_task_ns;     /* report a task running this long without suspending; 0 = 100 ms,
                                     UINT64_MAX = never (no watchdog thread) */
    size_t      executor_queue;   /* jobs the default executor queues before offloaders wait; 0 = 256 per thread */
    uint64_t    idle_poll_ns;     /* with I/O or jobs in flight and nothing to run, look for completions this
                                     long before sleeping in the kernel; 0 = never (the default). Env
                                     WEFT_IDLE_POLL_US. Costs a busy CPU while idle; saves the wake-up. */
    unsigned    submit_batch;     /* io_uring: hand requests to the kernel as soon as this many are queued
                                     (1 = each one at once, a system call each). 0 = the default, decided
                                     by what is in flight: a storage request (a read or write at an
                                     offset, an fsync) goes at once while at most 4 are in flight, so a
                                     disk with little to do starts on each as it is made; with more in
                                     flight it waits for the loop's wait, or for 8 queued, to go with
                                     the rest; every other request (sockets, pipes, reads at the file
                                     position) goes when the loop next waits, fewest system calls.
                                     ring_entries = everything at the wait. Env WEFT_SUBMIT_BATCH.
                                     Completions are still taken in at the loop's turn. A request handed
                                     over is the kernel's: freeing its pending future can no longer
                                     withdraw it. */
    /* Fields added after 0.1 go here; each is read only when size covers it. */
    /* Sends and batched waiting (io_uring; the epoll backend ignores all three). */
    size_t      send_zc_min;      /* io_uring: a weft_send (or _async, or weft_send_all's pieces) of at least
                                     this many bytes goes out as IORING_OP_SEND_ZC, which pins the
                                     caller's pages instead of copying them; 0 = never (the default: on
                                     loopback the kernel copies anyway and zero copy costs more, see
                                     docs/send-zc.md). Env WEFT_SEND_ZC_MIN (bytes, or with k, m, g).
                                     The call returns once the kernel has let go of the buffer (its
                                     notification), which on TCP can be later than a plain send would
                                     return: after the peer has taken the data on loopback, after the
                                     data is acknowledged on a network. A socket or kernel without zero
                                     copy gets a plain send (weft_stats.send_zc_fallbacks). */
    uint64_t    min_wait_ns;      /* io_uring on Linux 6.12+ (IORING_FEAT_MIN_TIMEOUT): when the loop sleeps,
                                     it waits up to this long for wait_batch completions before taking
                                     what has come, so a loop at moderate load wakes once per batch
                                     rather than once per message. Rounded up to microseconds; at most
                                     10 ms; 0 = off (the default: waits under ~100 us cost more CPU than
                                     they save, longer ones add about their length to every round
                                     trip; docs/batched-wait.md has the numbers). A timer due
                                     sooner is never delayed: the loop then waits plainly. Every
                                     completion can be taken up to this much later. Env
                                     WEFT_MIN_WAIT_US (microseconds). On epoll, and on a kernel without
                                     the feature, it is ignored with one line on stderr, and
                                     weft_stats.batched_waits stays 0. */
    unsigned    wait_batch;       /* with min_wait_ns: the completions that end the minimum wait early; 0 = 32.
                                     At most the completion queue (4 × ring_entries); set without
                                     min_wait_ns it is EINVAL. Env WEFT_WAIT_BATCH. */
    /* The timeline trace (see "Diagnostics": weft_trace_flush). */
    const char *trace_path;       /* record what the loop does and write it to this file as a Chrome Trace
                                     Event (Perfetto) JSON file when each run of the loop ends; NULL =
                                     no trace (the default: then it costs nothing). Env WEFT_TRACE. The
                                     file is made when the loop is (weft_loop_new fails with open's errno,
                                     said on stderr, if it cannot be) and written over whole each time.
                                     Loop N > 0 of a weft_run_cores writes PATH.N. */
    size_t      trace_events;     /* the events the trace keeps: the newest, the older ones dropped and
                                     counted in the file; 0 = 65536 (56 bytes each); at most 16777216.
                                     Env WEFT_TRACE_EVENTS. Unused without trace_path. */
    /*
     * Receive streams (io_uring; weft_recv). The first weft_recv on a stream socket weft handed out
     * arms one multishot receive that the kernel answers with a completion per arrival, into buffers
     * of a ring the loop shares among all its connections; the bytes are copied into the waiting
     * reader's buffer, or kept for the next read when nobody waits. See weft_recv.
     */
    size_t      recv_buffer_size; /* bytes per ring buffer; 0 = 16 KiB. At least 256, at most 1 MiB. Where the
                                     kernel consumes buffers incrementally (6.12), many small arrivals
                                     share one. Env WEFT_RECV_BUFFER_SIZE (bytes, or with k, m). */
    unsigned    recv_buffers;     /* ring buffers made at first; 0 = 64. Env WEFT_RECV_BUFFERS. */
    unsigned    recv_buffers_max; /* the ring grows (doubling) up to this many when the kernel finds it empty;
                                     0 = 4096. At most 32768, at least recv_buffers. Address space for
                                     all of them is reserved up front; memory is used as they fill. Env
                                     WEFT_RECV_BUFFERS_MAX. */
    size_t      recv_keep_max;    /* flow control: a connection keeps at most about this many received bytes
                                     nobody has read before its stream pauses, leaving the rest in the
                                     kernel's socket buffer (and TCP's window to the sender); the stream
                                     resumes once the reader has taken half. Also the most a
                                     weft_recv_borrow may wait for. 0 = 256 KiB; at most 1 GiB. Env
                                     WEFT_RECV_KEEP_MAX (bytes, or with k, m, g). */
} weft_config;

/* A configuration of all defaults that declares this header's size, for setting any field. */
#define WEFT_CONFIG_INIT {.size = sizeof(weft_config)}

/*
 * asyncio.run(): makes a loop with defaults, runs main(arg) as a task until it returns, then cancels every
 * task still alive and runs the loop until they have all ended, reports tasks nobody joined, and frees
 * the loop. Returns 0 and stores main's result in *result (result may be NULL), or a negative errno when
 * the loop could not start (-ENOMEM, -EINVAL for a WEFT_* variable weft cannot honour, -EBUSY if a
 * loop already runs on this thread, the error the ring setup returned, or for WEFT_TRACE the error of
 * making its file: -ENOENT, -EACCES, -EISDIR...). Blocks the calling thread;
 * not itself a suspending call.
 */
WEFT_API int weft_run(weft_fn main, void *arg, intptr_t *result);

/*
 * Creates a loop. cfg may be NULL for defaults. Returns NULL with errno set: ENOMEM (also for task
 * stacks that cannot be mapped), EINVAL for a configuration weft cannot honour (see above: each says
 * why on stderr), E2BIG (cfg sets fields this library does not have, see size above), the error
 * io_uring set-up failed with when "io_uring" was asked for by name (EPERM when refused by seccomp or
 * kernel.io_uring_disabled, ENOMEM when locked memory is short, ENOSYS on a kernel without it), or
 * open(2)'s error for a trace_path that cannot be made (ENOENT, EACCES, EISDIR..., said on stderr).
 *
 * With no backend named, a refused io_uring makes the loop use epoll, and one line on stderr says why
 * and what to change ("io_uring refused (EPERM): seccomp ...; using epoll"); weft_loop_fallback_reason
 * returns the same text. The loop runs on the thread that first calls weft_loop_run on it.
 */
WEFT_API weft_loop *weft_loop_new(const weft_config *cfg);

/*
 * Runs main(arg) as a task on l until it returns, then cancels and reaps the rest as weft_run does.
 * Returns 0 with main's result in *result (may be NULL); -EINVAL if l or main is NULL; -EBUSY if a loop
 * is already running on this thread or l runs on another thread. A loop may be run again afterwards.
 */
WEFT_API int weft_loop_run(weft_loop *l, weft_fn main, void *arg, intptr_t *result);

/* Frees a loop that is not running: its ring, stacks and pooled memory. NULL is ignored. */
WEFT_API void weft_loop_free(weft_loop *l);

/* The backend l runs on: "io_uring" or "epoll". NULL for NULL. */
WEFT_API const char *weft_loop_backend(const weft_loop *l);

/* Why l fell back from io_uring to epoll, or NULL if it did not. */
WEFT_API const char *weft_loop_fallback_reason(const weft_loop *l);

/* ------------------------------------------------------------------------------------------------
 * Tasks (fibers)
 *
 * A task is a function running on its own stack. Spawning is lazy: the new task is queued and starts
 * when its creator suspends (yields, sleeps, awaits...). Tasks of one loop run one at a time, in FIFO
 * order of becoming ready.
 *
 * Cancellation is cooperative and sticky: the target's current suspending call returns -ECANCELED, and
 * so does every later one, until the task returns. A task cancelled before it starts never runs (except
 * the task of a message from another loop, weft_post, which always runs).
 *
 * Every task must be released once: by weft_join (or weft_wait_for), or by weft_detach. A task neither
 * joined nor detached when its loop ends is reported on stderr as never joined.
 * ------------------------------------------------------------------------------------------------ */

/*
 * create_task(): queues fn(arg) as a new task on the calling thread's loop. Callable from a task or from
 * a callback running on the loop. Returns NULL with errno EINVAL (fn is NULL), EPERM (no loop runs on
 * this thread) or ENOMEM. During loop teardown a new task is cancelled before it starts.
 */
WEFT_API weft_task *weft_spawn(weft_fn fn, void *arg);

/* weft_spawn with a name that diagnostics print. The name is copied (up to 31 bytes). */
WEFT_API weft_task *weft_spawn_named(const char *name, weft_fn fn, void *arg);

/*
 * Suspends until t has ended, releases t and returns t's result. If the caller is cancelled (or its
 * deadline passes) while waiting, t is cancelled too and the caller keeps waiting until t has ended: no
 * task outlives the one joining it. The call then returns t's result if t produced one anyway (anything
 * but -ECANCELED), else -ECANCELED (-ETIMEDOUT for a deadline); t is released either way.
 * Errors: -EINVAL (t is NULL, the caller itself, or already released: joined twice, or detached),
 * -EPERM (outside a task). On -EPERM and -EINVAL t is left as it was. A released handle is recognised
 * until its memory is reused for a later task (weft reuses the oldest first); ASan builds catch every
 * later use.
 */
WEFT_API intptr_t weft_join(weft_task *t);

/*
 * Fire and forget: t is freed when it ends. If it ends with an error other than -ECANCELED, that error
 * is logged to stderr with the task's name at once, never lost. NULL is ignored.
 */
WEFT_API void weft_detach(weft_task *t);

/*
 * Requests cancellation of t (see above). Returns 0, -ESRCH if t has already ended, -EINVAL if t is NULL.
 * A task may cancel itself: its next suspending call returns -ECANCELED.
 */
WEFT_API int weft_cancel(weft_task *t);

/* The task running now, or NULL outside a task. */
WEFT_API weft_task *weft_self(void);

/* The task's name as given to weft_spawn_named, or "" for an unnamed task. */
WEFT_API const char *weft_task_name(const weft_task *t);

/* asyncio.sleep(0): lets every other ready task run once, then continues. Outside a task it does nothing. */
WEFT_API void weft_yield(void);

/* Suspends for ns nanoseconds. Returns 0, -ECANCELED, -ETIMEDOUT (a deadline came first), -EPERM. */
WEFT_API int weft_sleep(uint64_t ns);

/* CLOCK_MONOTONIC now, in nanoseconds. */
WEFT_API uint64_t weft_now(void);

/* ------------------------------------------------------------------------------------------------
 * Futures
 *
 * A future is a result that will be set once. Any number of tasks may await one future; callbacks run
 * on the loop (never inside the task that resolved it), in the order they were added, after it is done.
 * A task's future belongs to the task and lives until the task is released. A future from
 * weft_future_new belongs to the caller.
 * ------------------------------------------------------------------------------------------------ */

/* A new pending future, or NULL with errno ENOMEM. It belongs to the loop of the thread that awaits it. */
WEFT_API weft_future *weft_future_new(void);

/*
 * Sets f's result and wakes every task awaiting it. Loop thread only. Returns 0, -EALREADY if f was
 * already done, -EINVAL if f is NULL or a task's future (a task's future is resolved by its task).
 */
WEFT_API int weft_future_resolve(weft_future *f, intptr_t result);

/*
 * Resolves f from any thread, waking the loop even if it is parked in the kernel. Wakeups are batched:
 * many resolutions arriving together cost the loop one wakeup. Returns 0, -EALREADY if f was already
 * resolved, -EINVAL if f is NULL, a task's future, or was never awaited or resolved on a loop (weft
 * cannot know which loop to wake).
 */
WEFT_API int weft_future_resolve_from_thread(weft_future *f, intptr_t result);

/*
 * Suspends until f is done and returns its result. Cancelling the awaiting task returns -ECANCELED
 * from this call and leaves f untouched (cancel f itself with weft_future_cancel). Errors: -EINVAL
 * (f is NULL), -EPERM (outside a task), -ECANCELED, -ETIMEDOUT.
 */
WEFT_API intptr_t weft_await(weft_future *f);

/* true once f has a result. false for NULL. */
WEFT_API bool weft_future_done(const weft_future *f);

/* Resolves f with -ECANCELED. Returns 0, -EALREADY if done, -EINVAL (NULL or a task's future). */
WEFT_API int weft_future_cancel(weft_future *f);

/*
 * Calls cb(f, arg) on the loop once f is done (soon, if it already is). Callbacks run outside any task:
 * a suspending call inside one returns -EPERM. Returns 0, -EINVAL (f or cb NULL), -ENOMEM.
 */
WEFT_API int weft_future_on_done(weft_future *f, void (*cb)(weft_future *f, void *arg), void *arg);

/*
 * Frees a future from weft_future_new. A future still pending is first resolved with -ECANCELED, so
 * tasks awaiting it wake with -ECANCELED and callbacks run (before this returns' memory is released,
 * at the loop's next turn). A task's future is not freed this way (release the task instead): it is
 * ignored and reported. NULL is ignored.
 */
WEFT_API void weft_future_free(weft_future *f);

/* t's future: done when t ends, with t's result. Valid until t is released. NULL for NULL. */
WEFT_API weft_future *weft_task_future(weft_task *t);

/*
 * A done future's result without awaiting (asyncio's Future.result()): 0 with *result set, -EAGAIN if
 * f is still pending, -EINVAL if f or result is NULL. Counts as looking at it: a failed future read
 * this way is not reported as unawaited. Does not suspend.
 */
WEFT_API int weft_future_result(weft_future *f, intptr_t *result);

/* ------------------------------------------------------------------------------------------------
 * Callbacks on the loop (asyncio's call_soon, call_later, call_soon_threadsafe)
 *
 * A callback runs on the loop's thread outside any task (a suspending call in it returns -EPERM), in
 * the one queue ready tasks wait in: it runs in the order it became due among them, so a weft_yield
 * lets every callback due before it run. A callback that runs longer than slow_task_ns is reported
 * like a task.
 * ------------------------------------------------------------------------------------------------ */

typedef struct weft_timer weft_timer;

/* The loop running on the calling thread, NULL if none: what weft_call_soon_threadsafe needs. */
WEFT_API weft_loop *weft_loop_current(void);

/* Queues fn(arg) to run on this thread's loop. Does not suspend. Returns 0, -EINVAL (fn NULL), -EPERM
 * (no loop on this thread), -ENOMEM. */
WEFT_API int weft_call_soon(void (*fn)(void *arg), void *arg);

/*
 * Queues fn(arg) once delay_ns has passed (then in the order due, like weft_call_soon). With handle
 * NULL the call is fire-and-forget; otherwise *handle receives a handle the caller must release with
 * weft_timer_free (which also cancels a call still pending). Calls still pending when the loop's run
 * ends are dropped, never run. Does not suspend. Returns 0, -EINVAL, -EPERM, -ENOMEM.
 */
WEFT_API int weft_call_later(uint64_t delay_ns, void (*fn)(void *arg), void *arg, weft_timer **handle);

/* Cancels a pending weft_call_later call: fn will not run. Loop thread only. Returns 0, -EALREADY if
 * it already ran, was cancelled or its loop's run ended, -EINVAL (NULL, another loop's handle). */
WEFT_API int weft_timer_cancel(weft_timer *h);

/* Releases a handle from weft_call_later, cancelling its call if still pending. NULL is ignored. */
WEFT_API void weft_timer_free(weft_timer *h);

/*
 * Queues fn(arg) on loop l from any thread, waking l if it sleeps in the kernel; many calls arriving
 * together cost it one wakeup. Calls from one thread run in the order made. A call posted while l is
 * not running runs in its next weft_loop_run; weft_loop_free discards calls none ran. l must not have
 * been freed. Returns 0, -EINVAL (l or fn NULL), -ENOMEM.
 */
WEFT_API int weft_call_soon_threadsafe(weft_loop *l, void (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------------------------------------------
 * Waiting on many (asyncio.gather / wait / wait_for / timeout)
 * ------------------------------------------------------------------------------------------------ */

/*
 * Suspends until every future in fs[0..n) is done; stores each result in results[i] (results may be
 * NULL). Returns 0 if every result is >= 0, else the first negative result by index. If the caller is
 * cancelled or its deadline passes first, returns -ECANCELED or -ETIMEDOUT at once, leaves the futures
 * running and results[i] of unfinished ones untouched. -EINVAL if fs or an element is NULL.
 */
WEFT_API int weft_gather(weft_future *const *fs, size_t n, intptr_t *results);

/*
 * Joins the tasks ts[0..n) and releases every one of them, results[i] receiving each one's result
 * (results may be NULL): gather for tasks, in one call. Returns 0 if every result is >= 0, else the
 * first negative result by index. If the caller is cancelled or its deadline passes meanwhile, the
 * tasks not yet ended are cancelled and waited for (a task may be using the caller's memory), their
 * results are what they returned (usually -ECANCELED), and all are still released. -EINVAL if ts is
 * NULL with n > 0 or a handle cannot be joined (NULL, released, the caller, another loop's, or named
 * twice): then none is joined. -EPERM outside a task.
 */
WEFT_API int weft_join_all(weft_task *const *ts, size_t n, intptr_t *results);

/*
 * Suspends until any future in fs[0..n) is done and returns its index (the lowest, if several are), or
 * -ETIMEDOUT after timeout_ns (UINT64_MAX = no timeout), -ECANCELED, -EINVAL (n is 0, fs or an element
 * NULL), -ENOMEM (more than 16 futures need a waiter array).
 */
WEFT_API ssize_t weft_wait_any(weft_future *const *fs, size_t n, uint64_t timeout_ns);

/*
 * asyncio.as_completed(): hands out the futures fs[0..n) in the order they complete. Make the
 * iterator with weft_as_completed_new, take one future at a time with weft_as_completed_next, free
 * it with weft_as_completed_free.
 *
 * new: does not suspend; callable on the loop's thread in or outside a task. Futures already done
 * come first, by index. The futures must stay valid until each has been handed out or the iterator
 * is freed (a task's future: until the task is released); each result is copied as its future
 * completes, so a future handed out may be freed at once. The iterator counts as awaiting them: a
 * failure is not reported as unawaited. NULL with errno EPERM (no loop on this thread), EINVAL (fs
 * NULL with n > 0, an element NULL, a future of another loop), ENOMEM.
 */
WEFT_API weft_as_completed *weft_as_completed_new(weft_future *const *fs, size_t n);

/*
 * Suspends until the next of the futures has completed; returns its index in fs and stores its result
 * in *result (result may be NULL). Returns -EPIPE once all n have been handed out (at once for n 0).
 * Cancelled or past a deadline (weft_deadline_push is asyncio's timeout argument here), it returns
 * -ECANCELED or -ETIMEDOUT and hands nothing out: the future that completes meanwhile comes with the
 * next call, nothing is skipped. The futures are left running either way. -EPERM outside a task,
 * -EINVAL for NULL.
 */
WEFT_API ssize_t weft_as_completed_next(weft_as_completed *ac, intptr_t *result);

/* Frees the iterator; the futures are left as they are (running or done). NULL is ignored. */
WEFT_API void weft_as_completed_free(weft_as_completed *ac);

/*
 * asyncio.shield() for a task: weft_join, except that the caller's cancellation or deadline does not
 * reach t. Suspends until t has ended, releases t and returns its result. If the caller is cancelled
 * or its deadline passes first, the call returns -ECANCELED or -ETIMEDOUT at once and t runs on
 * detached (weft_detach: it is freed when it ends, and an error it ends with is reported, never
 * lost). t is released in every case but -EINVAL (t NULL, the caller, released, another loop's) and
 * -EPERM (outside a task). (A future needs no shield: weft_await never cancels what it awaits.)
 */
WEFT_API intptr_t weft_shield(weft_task *t);

/*
 * weft_join with a time limit: on timeout t is cancelled and reaped (the caller waits until it has
 * ended), and the call returns -ETIMEDOUT, or t's own result if t ignored the cancellation and returned
 * something other than -ECANCELED. t is released in every case but -EINVAL and -EPERM.
 */
WEFT_API intptr_t weft_wait_for(weft_task *t, uint64_t timeout_ns);

/*
 * A scoped deadline for the calling task: until the matching pop, every suspending call returns
 * -ETIMEDOUT once weft_now() >= deadline_ns (calls parked when it passes wake with -ETIMEDOUT).
 * Deadlines nest; the earliest in force wins. Outside a task both calls do nothing.
 */
WEFT_API void weft_deadline_push(uint64_t deadline_ns);
WEFT_API void weft_deadline_pop(void);

/* ------------------------------------------------------------------------------------------------
 * Task groups (asyncio.TaskGroup): structured concurrency
 * ------------------------------------------------------------------------------------------------ */

/* A new, empty group. NULL with errno ENOMEM. */
WEFT_API weft_group *weft_group_new(void);

/*
 * Spawns fn(arg) as a member of g. Members belong to the group (do not join or detach them; the task
 * handle is only for weft_cancel and naming). Once a member has failed, new members are cancelled
 * before they start. NULL with errno EINVAL (g or fn NULL), EPERM (no loop), ENOMEM.
 */
WEFT_API weft_task *weft_group_spawn(weft_group *g, weft_fn fn, void *arg);

/*
 * weft_group_spawn that also keeps the member's result: *result is -EINPROGRESS until the member
 * ends, then what it returned (-ECANCELED for a member cancelled, also one cancelled before it
 * started). result must stay valid until weft_group_wait returns, when every member has ended
 * (asyncio's task.result() after the TaskGroup block). result may be NULL (weft_group_spawn). Errors
 * as weft_group_spawn's; on error *result is untouched.
 */
WEFT_API weft_task *weft_group_spawn_result(weft_group *g, weft_fn fn, void *arg, intptr_t *result);

/*
 * Suspends until every member has ended. The first member to fail (end with an error other than
 * -ECANCELED) cancels the others; the call returns that first error, or 0. If the caller is cancelled
 * or its deadline passes, the members are cancelled and the call still waits for all of them, then
 * returns the first failure if there was one, else -ECANCELED / -ETIMEDOUT. Frees g, except on
 * -EPERM (outside a task) and -EINVAL (g NULL).
 */
WEFT_API int weft_group_wait(weft_group *g);

/* ------------------------------------------------------------------------------------------------
 * Coordination (asyncio.Queue, Event, Lock, Semaphore, Condition, Barrier)
 *
 * For tasks of one loop. Waiters are served first come, first served: a release hands the lock, the
 * permit or the item to the first waiter directly. A task cancelled (or timed out) while waiting is
 * removed from the queue and gets -ECANCELED (-ETIMEDOUT); if what it waited for was handed to it
 * before the cancel, the call succeeds and the next suspending call sees the cancel, so nothing is
 * lost or leaked either way. Freeing an object wakes its waiters with -EPIPE.
 * ------------------------------------------------------------------------------------------------ */

/* A channel of void * items holding up to capacity of them (0: a rendezvous, where each send waits
 * for its receiver). NULL with errno ENOMEM or EINVAL (capacity too large). */
WEFT_API weft_chan *weft_chan_new(size_t capacity);
/* Suspends while the channel is full. 0, -EPIPE once closed, -ECANCELED, -ETIMEDOUT, -EPERM, -EINVAL. */
WEFT_API int weft_chan_send(weft_chan *c, void *item);
/* Suspends while the channel is empty. 0 with *item, -EPIPE once closed and drained, -ECANCELED,
 * -ETIMEDOUT, -EPERM, -EINVAL. */
WEFT_API int weft_chan_recv(weft_chan *c, void **item);
/* weft_chan_send without waiting: -EAGAIN if it would. Callable outside a task on the loop's thread. */
WEFT_API int weft_chan_try_send(weft_chan *c, void *item);
/* weft_chan_recv without waiting: -EAGAIN if it would. */
WEFT_API int weft_chan_try_recv(weft_chan *c, void **item);
/*
 * A future for the next item, taking its turn among receivers: it completes with the item (cast to
 * intptr_t) or -EPIPE, so weft_wait_any can wait on channels, other futures and timeouts together.
 * Free it with weft_future_free; freeing it before it completes gives up its turn. NULL with errno
 * EPERM (no loop), EINVAL, ENOMEM.
 */
WEFT_API weft_future *weft_chan_recv_async(weft_chan *c);
/* Closes c: blocked and later senders get -EPIPE; receivers drain what is buffered, then get -EPIPE. */
WEFT_API void weft_chan_close(weft_chan *c);
/* Items buffered now. */
WEFT_API size_t weft_chan_len(const weft_chan *c);
/*
 * asyncio.Queue's task_done(): marks one item taken from c as dealt with. A channel counts the items
 * it has accepted (into its buffer, or handed straight to a receiver; not those whose senders still
 * wait for room) that nobody has marked yet. Does not suspend; callable outside a task on the loop's
 * thread. 0, or -EINVAL (c NULL, or called more times than items were sent: asyncio's ValueError).
 */
WEFT_API int weft_chan_task_done(weft_chan *c);
/*
 * asyncio.Queue's join(): suspends until every item accepted by c has been marked with
 * weft_chan_task_done (returns at once if none is outstanding). Closing c does not end the wait;
 * freeing it does, with -EPIPE. 0, -ECANCELED, -ETIMEDOUT (the count is left as it was), -EPERM,
 * -EINVAL.
 */
WEFT_API int weft_chan_join(weft_chan *c);
/* Items accepted and not yet marked done: what weft_chan_join waits to see at 0. */
WEFT_API size_t weft_chan_unfinished(const weft_chan *c);
/* Closes and frees c. */
WEFT_API void weft_chan_free(weft_chan *c);

/* An event, initially clear. NULL with errno ENOMEM. */
WEFT_API weft_event *weft_event_new(void);
/* Sets e and wakes every waiter. */
WEFT_API void weft_event_set(weft_event *e);
/* Clears e. */
WEFT_API void weft_event_clear(weft_event *e);
/* Whether e is set. */
WEFT_API bool weft_event_is_set(const weft_event *e);
/* Suspends until e is set (returns at once if it is). 0, -ECANCELED, -ETIMEDOUT, -EPERM, -EINVAL. */
WEFT_API int weft_event_wait(weft_event *e);
WEFT_API void weft_event_free(weft_event *e);

/* A mutex between tasks (not threads). NULL with errno ENOMEM. */
WEFT_API weft_mutex *weft_mutex_new(void);
/* Suspends until the calling task holds m. 0, -EDEADLK (it holds it already), -ECANCELED,
 * -ETIMEDOUT, -EPERM, -EINVAL. */
WEFT_API int weft_mutex_lock(weft_mutex *m);
/* Takes m if free: 0, -EBUSY, -EDEADLK, -EPERM, -EINVAL. */
WEFT_API int weft_mutex_trylock(weft_mutex *m);
/* Releases m, handing it to the first waiter. Misuse (a task that does not hold it) is reported and
 * ignored. */
WEFT_API void weft_mutex_unlock(weft_mutex *m);
WEFT_API void weft_mutex_free(weft_mutex *m);

/* A semaphore with n permits. NULL with errno ENOMEM. */
WEFT_API weft_sem *weft_sem_new(unsigned n);
/* Suspends until a permit is free and takes it. 0, -ECANCELED, -ETIMEDOUT, -EPERM, -EINVAL. */
WEFT_API int weft_sem_acquire(weft_sem *s);
/* Takes a permit if one is free: 0 or -EAGAIN. */
WEFT_API int weft_sem_try_acquire(weft_sem *s);
/* Gives a permit back (to the first waiter, if any). */
WEFT_API void weft_sem_release(weft_sem *s);
/* Free permits now. */
WEFT_API unsigned weft_sem_value(const weft_sem *s);
WEFT_API void weft_sem_free(weft_sem *s);

/* A condition variable (asyncio.Condition, pthread_cond_t) for tasks, used with a weft_mutex. NULL
 * with errno ENOMEM. */
WEFT_API weft_cond *weft_cond_new(void);
/*
 * Releases m, which the calling task must hold, suspends until weft_cond_notify or
 * weft_cond_notify_all wakes it, then takes m again before it returns. m is held again on every
 * return but -EPERM and -EINVAL, cancellation included: a task cancelled (or past its deadline)
 * while waiting leaves the queue, waits for m as long as it takes (that wait cannot be interrupted),
 * and returns -ECANCELED (-ETIMEDOUT), as asyncio's Condition.wait re-acquires its lock. A task
 * notified before it was cancelled returns 0 (the notification is not lost; its next suspending call
 * sees the cancel). A task already cancelled returns -ECANCELED at once, still holding m. As with
 * every condition variable, check the predicate in a loop. Errors: -EPERM (outside a task, or the
 * caller does not hold m), -EINVAL (c or m NULL), -EPIPE (c freed while waiting; m is held again).
 */
WEFT_API int weft_cond_wait(weft_cond *c, weft_mutex *m);
/* Wakes the task that has waited longest on c, if any. Holding the mutex is not required. */
WEFT_API void weft_cond_notify(weft_cond *c);
/* Wakes every task waiting on c; they take the mutex again one after another, in order of waiting. */
WEFT_API void weft_cond_notify_all(weft_cond *c);
/* Frees c; its waiters wake with -EPIPE (after taking their mutex again). NULL is ignored. */
WEFT_API void weft_cond_free(weft_cond *c);

/* A barrier (asyncio.Barrier) for parties tasks, reusable round after round. NULL with errno EINVAL
 * (parties 0) or ENOMEM. */
WEFT_API weft_barrier *weft_barrier_new(unsigned parties);
/*
 * Suspends until parties tasks are waiting, then lets them all go and starts the next round. Returns
 * this task's place in the round, 0 to parties - 1: the waiters in order of arrival, parties - 1 for
 * the one that arrived last (which does not suspend). A task cancelled (or past its deadline) while
 * waiting leaves the round, which then waits for one more task, and gets -ECANCELED (-ETIMEDOUT); one
 * whose round went before the cancel returns its place. -EPERM, -EINVAL, -EPIPE (freed while waiting).
 */
WEFT_API int weft_barrier_wait(weft_barrier *b);
/* Tasks waiting in the current round. */
WEFT_API unsigned weft_barrier_waiting(const weft_barrier *b);
/* Frees b; its waiters wake with -EPIPE. NULL is ignored. */
WEFT_API void weft_barrier_free(weft_barrier *b);

/* ------------------------------------------------------------------------------------------------
 * I/O
 *
 * Every call here suspends and takes the arguments of the system call it is named after and returns
 * what it returns, with errors as -errno (-EBADF, -ENOENT, -ECONNREFUSED, -ECONNRESET, -EPIPE, ...).
 * On io_uring each call is one request to the kernel, network and files alike; no thread of weft's is
 * involved.
 *
 * Cancellation and deadlines: a call interrupted while the kernel holds its buffer asks the kernel to
 * cancel the request and returns only after the kernel has let go of the buffer. If the request
 * completed anyway, the call returns its real result (no byte read or written is lost) and the next
 * suspending call returns -ECANCELED (or -ETIMEDOUT). A call whose fd is closed by weft_close while it
 * waits returns -EBADF.
 *
 * The caller's fds keep their file status flags: weft never leaves O_NONBLOCK (or any flag) set or
 * cleared. io_uring needs none. epoll makes each try non-blocking by the call's own flag: MSG_DONTWAIT
 * on sockets (read and write on a socket go as recv and send), RWF_NOWAIT on pipes. A terminal (or
 * another device without RWF_NOWAIT), and accept or connect on a blocking socket, get O_NONBLOCK for
 * the one system call of each try and their flags back right after it: in that moment another process
 * sharing the open file description (a shell sharing the terminal) would see O_NONBLOCK set.
 *
 * An fd closed with close(2) rather than weft_close (by a library, fclose, another thread): a call
 * made afterwards on a number reused by a new file works on the new file. On epoll, a call that was
 * already waiting, or that waits on a reused number weft did not hand out itself, is noticed within 1
 * to 2 s of waiting (up to 9 s once it has waited long): it then goes on with the number's new file, or
 * ends with -EBADF if the number is closed. On io_uring such a call holds the file it started on and
 * ends as that file does (0 at its end of stream when its peer closes). docs/epoll.md has the details.
 *
 * The _async forms return a future at once (NULL with errno EPERM outside a loop, ENOMEM), so one
 * task can keep many requests in flight; the buffer must stay valid until the future is done. Errors
 * arrive as the future's result. The future belongs to the caller: weft_future_free it once done.
 * weft_future_cancel on a pending one cancels the request; the future then completes, once the kernel
 * has let go of the buffer, with -ECANCELED or, if the request finished anyway, its real result: cancel
 * and await to get the buffer back. Freeing a pending one cancels the request without waiting: a
 * request not yet handed to the kernel never runs; one the kernel already holds may still complete
 * into the buffer (whose owner should keep it until then), and its result goes to whoever awaits the
 * future, or nowhere; weft frees the future's memory when the kernel lets go of it. An _async request
 * that weft runs on the executor (files on epoll) reads and writes through a buffer of its own, so it
 * never touches the caller's once the future is freed.
 * ------------------------------------------------------------------------------------------------ */

/* Flags for weft_tcp_listen and weft_udp_bind. */
#define WEFT_REUSEPORT 0x1 /* SO_REUSEPORT: several listeners (loops) share the port */

/* socket(2): the same socket on both backends (blocking unless type has SOCK_NONBLOCK). */
WEFT_API int weft_socket(int domain, int type, int protocol);
/* accept4(2): flags are SOCK_NONBLOCK / SOCK_CLOEXEC. addr and len may be NULL. When the process or
 * system is out of fds (EMFILE, ENFILE) it does not return: it waits, backing off from 1 ms to 1 s,
 * until one is free (logged once, counted in weft_stats.accept_backoffs), so an accept loop never
 * spins. On io_uring (Linux 5.19+), the first call on a listener with addr NULL starts a multishot
 * accept: connections arriving between calls are accepted ahead, up to 64, and handed to the next
 * calls in arrival order; weft_close of the listener closes those nobody took. */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags);
/* connect(2). -ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH... */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t len);
/*
 * recv(2). 0 at end of stream.
 *
 * On io_uring, the first weft_recv on a stream socket weft handed out (weft_accept, weft_socket,
 * weft_tcp_connect, weft_unix_connect) arms a receive stream: one multishot receive that the kernel
 * answers whenever bytes arrive, into buffers the loop shares among its connections
 * (weft_config.recv_*), so reading a connection costs no request per call. The bytes go straight into
 * the waiting call's buffer, or are kept for the next call when none waits; every later read of the fd
 * through weft (weft_recv, weft_read, weft_readv, weft_recvmsg, weft_poll, weft_recv_borrow and the
 * _async forms) is served from what is kept first, in order, without a system call. What the caller
 * sees is recv(2)'s: short reads, 0 at EOF after the bytes before it, an error (-ECONNRESET, ...)
 * once, MSG_DONTWAIT (-EAGAIN when nothing is kept), MSG_PEEK and MSG_WAITALL; calls with other flags
 * (MSG_OOB, MSG_ERRQUEUE, MSG_TRUNC) go to the kernel as they are. A cancelled or timed-out call loses
 * nothing: the bytes wait for the next. A stream pauses while its reader leaves recv_keep_max bytes
 * unread (weft_stats.recv_pauses), leaving the rest to TCP's flow control.
 *
 * A stream holds the socket open while it is armed, and reads ahead: close such an fd with weft_close
 * (which stops it), not close(2); read it only through weft (a read(2) of its own would miss what is
 * kept); and read a Unix socket that passes descriptors (SCM_RIGHTS) with weft_recvmsg only, which
 * never starts a stream (a stream's reads carry no control data). Sockets weft did not hand out (made
 * with socket(2), or accepted on another loop) and the epoll backend read with one request per call.
 * WEFT_URING_NO_OPS=recv_multishot turns streams off.
 */
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags);
/*
 * Zero-copy reads: lends the bytes received on fd where they lie, instead of copying them into a buffer
 * of the caller's (a parser reads a request in place, as Redis and nginx do). Suspends until at least
 * min bytes (0 counts as 1) that no call has read are there, or the stream ends; then sets *data to all
 * of them, contiguous, and returns how many: at least min, or fewer at the end of the stream. Returns 0
 * at EOF with nothing left, a negative errno for a receive error (once, as weft_recv), -EMSGSIZE if min
 * is above weft_config.recv_keep_max, -EBUSY if a view of fd is already lent, -EINVAL if data is NULL,
 * -EBADF, -EPERM outside a task, -ECANCELED, -ETIMEDOUT (then nothing is lost: the bytes wait for the
 * next read).
 *
 * The view is the caller's until weft_recv_release(fd, *data, consumed) gives it back and says how many
 * of its first bytes were consumed; the others are returned again, first, by the next read, followed by
 * what came meanwhile. A parser that finds a request cut short releases what it consumed and borrows
 * again with min one more than it has left, which waits for more and returns the bytes joined. The view
 * stays valid across suspensions (send the reply, then release); meanwhile other reads of fd return
 * -EBUSY, as they would overtake it. weft_close(fd) ends the view: its memory may be reused at once.
 *
 * On io_uring with a receive stream (see weft_recv), when one arrival holds min bytes and nothing kept
 * comes before it, the view is the ring buffer the kernel filled: no copy at all (counted in
 * weft_stats.recv_lends), and that buffer stays out of the ring until the view comes back. Otherwise
 * (bytes kept from before, min spanning arrivals, epoll, a socket without a stream) it is the
 * connection's own buffer, filled by as few reads as min needs.
 */
WEFT_API ssize_t weft_recv_borrow(int fd, const void **data, size_t min);
/* Gives back the view weft_recv_borrow lent, of which the first consumed bytes are read. 0; -EINVAL if
 * fd has no view lent, data is not the view's start, or consumed is more than the view holds (so a
 * second release of one view is -EINVAL); -ENOMEM (the view stays lent: release it again); -EPERM
 * outside a loop. Does not suspend. */
WEFT_API int weft_recv_release(int fd, const void *data, size_t consumed);
/* send(2), with MSG_NOSIGNAL always added: a closed peer gives -EPIPE, never SIGPIPE. On io_uring, a
 * send of weft_config.send_zc_min bytes or more goes out zero-copy (IORING_OP_SEND_ZC) and returns
 * only once the kernel's notification says it no longer reads buf: the buffer is the caller's again
 * when the call returns, as with a plain send. Cancelled or past its deadline while the kernel still
 * holds the pages, it waits for them all the same (no cancel can hasten the network) and returns the
 * bytes sent, the interruption reaching the next call; cancelled before any byte was taken, it
 * returns -ECANCELED or -ETIMEDOUT. A socket or kernel without zero copy gets a plain send. */
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags);
/* recvmsg(2). */
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags);
/* sendmsg(2), with MSG_NOSIGNAL always added. */
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags);
/* shutdown(2). */
WEFT_API int weft_shutdown(int fd, int how);
/*
 * close(2), after cancelling this loop's requests still in flight on fd (they return -EBADF).
 * It always closes: it ignores the caller's cancellation and deadlines, so cleanup code in a cancelled
 * task still releases its fds. In a task it suspends until the kernel has let go of the requests on
 * fd; outside a task (a callback, or a thread with no loop) it does not suspend: it asks the kernel to
 * cancel them and closes at once, and they end with -EBADF afterwards. Returns 0 or -EBADF.
 */
WEFT_API int weft_close(int fd);

/* openat(2). */
WEFT_API int weft_openat(int dfd, const char *path, int flags, mode_t mode);
/* pread(2) at offset, or read(2) at the file position when offset is -1. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, int64_t offset);
/* pwrite(2) at offset, or write(2) at the file position when offset is -1. A pipe or socket whose
 * reader is gone gives -EPIPE, never SIGPIPE (the same for weft_writev and the _async forms): the
 * disposition and the thread's mask are left as they are, and a SIGPIPE pending before stays pending. */
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len, int64_t offset);
/* preadv(2) / readv(2) (offset -1). -EINVAL if iovcnt < 0. */
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
/* pwritev(2) / writev(2) (offset -1). -EPIPE, never SIGPIPE, as weft_write. */
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
/* fsync(2), or fdatasync(2) when datasync. */
WEFT_API int weft_fsync(int fd, bool datasync);
/*
 * A durable write: pwrite(2) of buf at offset (the file position when -1), then fdatasync(2), and the
 * call returns once both are done. On io_uring the two are one linked pair of requests (IOSQE_IO_LINK):
 * the kernel starts the sync the moment the write has completed, without a trip through the loop; on
 * epoll they run one after the other in one executor job. Returns len once the data (and the metadata
 * needed to read it back) is on stable storage. A short write (the disk or RLIMIT_FSIZE ran out) is
 * returned as it is and nothing was synced: the sync runs only after a write in full, so write the
 * rest and call again. Errors: the write's (-EBADF, -ENOSPC, -EFBIG, -EINVAL for O_DIRECT misalignment
 * ...), or the sync's after a full write (-EIO: the data may not have reached the disk; -EINVAL: fd
 * cannot be synced, a pipe or socket, though the data was written), -ECANCELED and -ETIMEDOUT (the write
 * may have happened, its durability is unknown; a sync that completed anyway returns len), -EBADF also
 * when another task's weft_close(fd) cancelled the pair, -EMFILE (no fd for the duplicate of fd that
 * the pair goes through, so that a close meanwhile cannot make the sync find another file under fd's
 * number), -EPERM (outside a task). Suspends. Many tasks appending to one log can share syncs:
 * examples/group_commit.c.
 */
WEFT_API ssize_t weft_write_durable(int fd, const void *buf, size_t len, int64_t offset);
/*
 * Sends up to len bytes of the file in_fd, from offset (its file position when -1, which it then
 * advances), to out_fd (a socket, a pipe, a file), without copying them through user memory: what
 * nginx's "sendfile on" does. Suspends until all len bytes are sent or the file ends. Returns the bytes
 * sent: len, fewer when the file ends first (0 at or past its end), or, when an error or interruption
 * comes after some bytes went out, that count, with the error held for out_fd as weft_send_all holds
 * it (the next call on out_fd returns it; a cancel or deadline is not held, it stays in force
 * anyway). A negative errno when nothing was sent: -EPIPE or -ECONNRESET (the peer has gone; never
 * SIGPIPE), -EBADF, -EINVAL (offset below -1; in_fd not a file sendfile can read: a regular file or
 * block device is; -ESPIPE on io_uring for a pipe or socket given with an offset), -ECANCELED,
 * -ETIMEDOUT, -EPERM (outside a task), -EMFILE or -ENFILE (io_uring: no fd for its pipe, or for the
 * duplicate of out_fd it holds while a chunk's splices run).
 *
 * How: on io_uring each chunk of up to 1 MiB (the pipe's size) goes file -> pipe -> out_fd as a pair
 * of linked IORING_OP_SPLICE requests, through a pipe of the loop's own (up to 64 idle pipes, 128 fds,
 * are kept for the next calls; a cancelled or cut-short send never leaves one holding stale bytes).
 * The splices run in the kernel's io-wq threads, where a send to a blocking socket that is full waits
 * for room. On epoll,
 * sendfile(2) is tried when out_fd is writable (a file out_fd: on the executor); it reads the file
 * on the loop's thread, from the page cache or, for pages not cached, from the disk, as nginx's
 * sendfile does. A socket that is non-blocking (O_NONBLOCK) works on both: weft waits for it to be
 * writable. Cancelled or timed out mid-file, the call returns the bytes sent so far (the rest was never
 * sent: go on from offset + that count), or -ECANCELED / -ETIMEDOUT if none were.
 */
WEFT_API ssize_t weft_sendfile(int out_fd, int in_fd, int64_t offset, size_t len);
/* statx(2). -EFAULT if path or out is NULL. struct statx comes from <sys/stat.h> with _GNU_SOURCE, or
 * from <linux/stat.h>. */
struct statx;
WEFT_API int weft_statx(int dfd, const char *path, int flags, unsigned mask, struct statx *out);
/* unlinkat(2). */
WEFT_API int weft_unlinkat(int dfd, const char *path, int flags);
/* renameat2(2). */
WEFT_API int weft_renameat(int olddfd, const char *oldp, int newdfd, const char *newp, unsigned flags);
/* mkdirat(2). */
WEFT_API int weft_mkdirat(int dfd, const char *path, mode_t mode);
/* Waits until fd is ready for events (POLLIN, POLLOUT, ...) and returns the revents, for code that
 * needs readiness rather than completion. */
WEFT_API int weft_poll(int fd, short events);

/* Many requests in flight from one task (see above). */
WEFT_API weft_future *weft_read_async(int fd, void *buf, size_t len, int64_t offset);
WEFT_API weft_future *weft_write_async(int fd, const void *buf, size_t len, int64_t offset);
WEFT_API weft_future *weft_recv_async(int fd, void *buf, size_t len, int flags);
WEFT_API weft_future *weft_send_async(int fd, const void *buf, size_t len, int flags);
/*
 * The _async form of every other suspending call but weft_close (which must wait for the requests it
 * cancels; outside a task it does not suspend anyway). What the future resolves with is what the call
 * returns. Paths and connect's address are copied at the call, so they may go once it returns (NULL
 * with errno EFAULT for a NULL path, EINVAL for a NULL or oversized address); everything else the
 * call points at (iovecs and their buffers, msghdr, the accept address, statx's out) must stay valid
 * until the future is done. Not the accept backoff: an _async accept out of fds resolves with -EMFILE.
 */
WEFT_API weft_future *weft_socket_async(int domain, int type, int protocol);
WEFT_API weft_future *weft_accept_async(int fd, struct sockaddr *addr, socklen_t *len, int flags);
WEFT_API weft_future *weft_connect_async(int fd, const struct sockaddr *addr, socklen_t len);
WEFT_API weft_future *weft_recvmsg_async(int fd, struct msghdr *msg, int flags);
WEFT_API weft_future *weft_sendmsg_async(int fd, const struct msghdr *msg, int flags);
WEFT_API weft_future *weft_shutdown_async(int fd, int how);
WEFT_API weft_future *weft_poll_async(int fd, short events);
WEFT_API weft_future *weft_openat_async(int dfd, const char *path, int flags, mode_t mode);
WEFT_API weft_future *weft_readv_async(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
WEFT_API weft_future *weft_writev_async(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
WEFT_API weft_future *weft_fsync_async(int fd, bool datasync);
WEFT_API weft_future *weft_statx_async(int dfd, const char *path, int flags, unsigned mask, struct statx *out);
WEFT_API weft_future *weft_unlinkat_async(int dfd, const char *path, int flags);
WEFT_API weft_future *weft_renameat_async(int olddfd, const char *oldp, int newdfd, const char *newp,
                                          unsigned flags);
WEFT_API weft_future *weft_mkdirat_async(int dfd, const char *path, mode_t mode);

/*
 * Registered buffers (io_uring's fixed buffers)
 *
 * A loop can register a set of buffers with the kernel once, and then read into and write from them
 * with weft_read_fixed and weft_write_fixed: on io_uring those are READ_FIXED and WRITE_FIXED
 * requests, for which the kernel pinned and mapped the pages at registration instead of at every
 * request (what fio's fixedbufs option does); on epoll they are plain reads and writes (on the
 * executor for files), so a program runs unchanged on both.
 *
 * Rules. The set belongs to the calling thread's loop and stays registered until
 * weft_buffers_unregister, or until the loop is freed (it survives between weft_loop_run calls). The
 * memory must stay allocated and mapped at the same address for all that time: io_uring holds the
 * pages it pinned, so memory freed and reused while registered would not be what the kernel reads
 * and writes. Use anonymous memory (malloc, posix_memalign, mmap MAP_ANONYMOUS) or huge pages: io_uring
 * refuses shared mappings of files other than shmem with -EFAULT. Pinned pages count against
 * RLIMIT_MEMLOCK (unless the process has CAP_IPC_LOCK). Registration adds no alignment rule of its own:
 * an O_DIRECT file still needs buffer address, offset and length aligned to its logical block size
 * (512 B or 4 KiB; statx's STATX_DIOALIGN tells), and says -EINVAL otherwise, registered or not.
 * A call names the buffer by its index in the set and may use any part of it: [buf, buf + len) must
 * lie inside that buffer, or the call returns -EINVAL without reaching the kernel, on both backends.
 */

/*
 * Registers iov[0..count) with the calling thread's loop (the array is copied; the memory it points at
 * is what must stay). Does not suspend; callable from a task or a callback of the loop. Returns 0, or
 * -EPERM (no loop on this thread), -EINVAL (iov NULL, count 0 or above 16384, a buffer NULL, empty or
 * larger than 1 GiB), -EBUSY (a set is registered already: unregister it first), -ENOMEM (no memory, or
 * the pages could not be pinned: RLIMIT_MEMLOCK, said on stderr), -EFAULT (io_uring refused the
 * memory: not mapped, or a shared file mapping; epoll cannot tell, and its calls then fail with
 * -EFAULT instead). On error nothing is registered.
 */
WEFT_API int weft_buffers_register(const struct iovec *iov, unsigned count);
/*
 * Unregisters the loop's set: later fixed calls return -EINVAL, and another set may be registered.
 * Requests through the set still in flight finish with it (the kernel holds its pages until they do);
 * their memory must stay valid until they are done. Does not suspend. 0, -EPERM (no loop), -ENXIO
 * (no set registered).
 */
WEFT_API int weft_buffers_unregister(void);
/* weft_read into registered buffer number index: pread(2) at offset, read(2) at the file position
 * when offset is -1. Suspends. Returns what weft_read returns, or -EINVAL (no set, index past it, or
 * [buf, buf + len) not inside buffer index). */
WEFT_API ssize_t weft_read_fixed(int fd, void *buf, size_t len, int64_t offset, unsigned index);
/* weft_write from registered buffer number index, as weft_read_fixed (and -EPIPE, never SIGPIPE, as
 * weft_write). */
WEFT_API ssize_t weft_write_fixed(int fd, const void *buf, size_t len, int64_t offset, unsigned index);
/* The _async forms (see above): NULL with errno EINVAL for the misuse the calls return -EINVAL for,
 * EPERM outside a loop, ENOMEM. */
WEFT_API weft_future *weft_read_fixed_async(int fd, void *buf, size_t len, int64_t offset, unsigned index);
WEFT_API weft_future *weft_write_fixed_async(int fd, const void *buf, size_t len, int64_t offset, unsigned index);

/* Conveniences */

/*
 * A listening TCP socket (SO_REUSEADDR, close-on-exec, non-blocking: accept it with weft_accept; an
 * accept(2) of its own gets EAGAIN when no connection waits) bound to host and port (0: the kernel picks
 * one; weft_socket_port tells which). host is a numeric IPv4 or IPv6 address ("127.0.0.1", "::1",
 * "[::1]"), NULL, "" or "*" for every IPv4 address, or a name ("localhost"), bound at the first of its
 * addresses that binds. flags: WEFT_REUSEPORT. A numeric address never suspends: usable before a loop
 * runs. A name is resolved with getaddrinfo where that cannot stall a loop: on the default executor
 * when called from a task (the call suspends), as a plain blocking call where no loop runs on the
 * thread (set-up before weft_run); on a loop's thread outside a task (in a callback) a name gives
 * -EPERM. Returns the fd, -EINVAL (unknown flag), -ENOENT (no such name), -EAGAIN (resolver failing
 * for now), -ECANCELED / -ETIMEDOUT (during a lookup) or the errno of socket, bind or listen
 * (-EADDRINUSE...).
 */
WEFT_API int weft_tcp_listen(const char *host, uint16_t port, int backlog, int flags);
/*
 * A TCP connection (TCP_NODELAY, close-on-exec) to host and port. A numeric IPv4 or IPv6 address is
 * used as it is; a name is resolved with getaddrinfo on the default executor (it blocks, so never on
 * the loop) and each address is tried in turn. Suspends. Returns the fd or -errno: -ENOENT (no such
 * name), -EAGAIN (resolver temporarily failing), -ECONNREFUSED, ...
 */
WEFT_API int weft_tcp_connect(const char *host, uint16_t port);
/*
 * Sends all of buf. Returns len, or a negative errno if nothing was sent; if an error or interruption
 * comes after some bytes went out, returns that count, and the error is held for fd: the next weft
 * call on fd (from any task of the loop) returns it instead of running. weft_close(fd) drops it, and
 * so does any weft call that hands out the fd's number anew (socket, accept, openat); no other call
 * sees it. An interruption is not held: it stays in force anyway.
 */
WEFT_API ssize_t weft_send_all(int fd, const void *buf, size_t len);
/*
 * Receives exactly len bytes. Returns len; fewer only at end of stream or when an error or
 * interruption comes after some bytes arrived (they are in buf, and the error is held for fd as
 * weft_send_all holds it, a peer's reset included, which the kernel reports only once); a negative
 * errno if nothing arrived.
 */
WEFT_API ssize_t weft_recv_exact(int fd, void *buf, size_t len);

/* Submits a no-op and suspends until its completion: one trip through submission, completion and
 * resumption. Returns 0, -ECANCELED, -ETIMEDOUT, -EPERM. */
WEFT_API int weft_nop(void);

/* ------------------------------------------------------------------------------------------------
 * Sockets beside TCP: UDP, Unix stream sockets, and the port a socket is bound to
 *
 * Hosts are given as to weft_tcp_listen and weft_tcp_connect: a numeric address is used as it is, a
 * name is resolved on the default executor from a task (suspending), with a blocking getaddrinfo where
 * no loop runs on the thread, and gives -EPERM on a loop's thread outside a task; each of its
 * addresses is tried in turn. Every socket made here is close-on-exec. Read and write them with
 * weft_recv, weft_send, weft_recvmsg and weft_sendmsg (datagrams keep their boundaries; recvmsg's
 * msg_name gives a datagram's sender and MSG_TRUNC in msg_flags a datagram cut short), and close them
 * with weft_close.
 *
 * A Unix socket's path is a file system path (at most 107 bytes), or a name in Linux's abstract
 * namespace written with a leading '@' ("@weft-demo": no file, gone with the last socket; at most 107
 * bytes after the '@').
 * ------------------------------------------------------------------------------------------------ */

/*
 * A UDP socket bound to host and port (0: the kernel picks; NULL, "" or "*": every IPv4 address). No
 * SO_REUSEADDR, which for UDP would let unrelated sockets share the port; flags: WEFT_REUSEPORT. Does
 * not suspend for a numeric host. Returns the fd, -EINVAL (unknown flag), -ENOENT, -EAGAIN, -EPERM
 * (see above) or the errno of socket or bind (-EADDRINUSE, -EADDRNOTAVAIL...).
 */
WEFT_API int weft_udp_bind(const char *host, uint16_t port, int flags);

/*
 * A UDP socket connected to host and port: weft_send sends to that peer, weft_recv takes datagrams from
 * it alone, and an ICMP "port unreachable" comes back as -ECONNREFUSED from a later call. Connecting a
 * datagram socket sends nothing and does not wait: no suspension for a numeric host; a name gets the
 * first of its addresses that can be connected (no handshake tells where anyone listens). Returns the fd,
 * -ENOENT, -EAGAIN, -EPERM (see above), or the errno of socket or connect (-ENETUNREACH...).
 */
WEFT_API int weft_udp_connect(const char *host, uint16_t port);

/*
 * A listening Unix stream socket (close-on-exec, non-blocking as weft_tcp_listen's) at path (see above).
 * Does not suspend. A file left by
 * an earlier listener is not removed: bind then fails with -EADDRINUSE, so unlink it first, and after
 * closing. Returns the fd, -EINVAL (path NULL, "" or "@"), -ENAMETOOLONG, or the errno of socket, bind
 * or listen (-EADDRINUSE, -ENOENT for a missing directory, -EACCES).
 */
WEFT_API int weft_unix_listen(const char *path, int backlog);

/*
 * A Unix stream connection (close-on-exec) to path. Suspends. Returns the fd, -EINVAL, -ENAMETOOLONG,
 * -EPERM (outside a task), -ENOENT (no such path), -ECONNREFUSED (nobody listening), -ECANCELED,
 * -ETIMEDOUT...
 */
WEFT_API int weft_unix_connect(const char *path);

/*
 * The local port of a TCP or UDP socket on IPv4 or IPv6 (0 if it is not bound yet): how a server
 * learns the port the kernel picked for port 0. Does not suspend. -EBADF, -ENOTSOCK, -EAFNOSUPPORT (a
 * Unix socket, or another family without ports).
 */
WEFT_API int weft_socket_port(int fd);

/* ------------------------------------------------------------------------------------------------
 * Signals
 *
 * A task waits for a signal as for any other event, without a handler: weft blocks the signals being
 * waited for and reads them from a signalfd (on io_uring, one read request in the ring; on epoll, a
 * wait for readiness).
 *
 * The mask: while a task of the loop waits for a signal, that signal is blocked in the loop's thread;
 * when the last wait for it returns, weft unblocks it again, unless it was already blocked when weft
 * blocked it. Dispositions (handlers, SIG_IGN) are never touched. So a signal that arrives while no
 * task waits for it meets its disposition as if weft were not there (for SIGTERM and SIGINT the
 * default ends the process). To keep such a signal for the next wait, block it yourself
 * (pthread_sigmask): weft then leaves it blocked, it stays pending, and the next wait returns it at
 * once. A standard signal does not queue: a second SIGTERM arriving while one is pending is lost; a
 * real-time signal queues. Do not change the mask of a signal on the loop's thread while a task
 * waits for it.
 *
 * A signal sent to the process (kill, a terminal's ^C) goes to any one thread that does not block it.
 * weft's own threads (executor, watchdog) block every signal; a thread of your own must block the
 * signals a task waits for, or it may take them (block them in main before making threads, which
 * inherit the mask). With loops on several threads, such a signal reaches one of them. A signal sent
 * to a thread (pthread_kill, tgkill, raise) reaches only that thread's waits. A child started with
 * weft_process_spawn does not inherit the signals weft blocked.
 *
 * Several tasks may wait at once, for the same signals or different ones. Each signal goes to the task
 * that has waited longest among those whose set holds it, so tasks waiting for the same signal get
 * successive deliveries in the order they began to wait.
 * ------------------------------------------------------------------------------------------------ */

/* struct signalfd_siginfo comes from <sys/signalfd.h>. */
struct signalfd_siginfo;

/*
 * Suspends until a signal of set arrives and returns its number; the sender's details (ssi_pid,
 * ssi_uid, ssi_code, sigqueue's value in ssi_int and ssi_ptr) go to *info, which may be NULL. A signal
 * of set already pending (blocked by the caller before the call) is returned at once. Cancellation
 * and deadlines work as in the coordination calls: a signal handed to the task before the
 * interruption is returned and the next suspending call sees it; otherwise the call takes no signal.
 * Errors: -EINVAL (set is NULL, empty, or holds SIGKILL or SIGSTOP, which cannot be blocked), -EPERM
 * (outside a task), -ECANCELED, -ETIMEDOUT, -ENOMEM, or signalfd's error (-EMFILE, -ENFILE). On
 * every return the signals this call blocked are unblocked unless another task still waits for them.
 */
WEFT_API int weft_signal_wait(const sigset_t *set, struct signalfd_siginfo *info);

/* ------------------------------------------------------------------------------------------------
 * Child processes (asyncio.create_subprocess_exec)
 *
 * A child runs a program with its standard streams, if asked, as pipes the parent reads and writes
 * with weft_read and weft_write (or their _async forms), and its exit is waited for through a pidfd:
 * no thread, no SIGCHLD handler. On io_uring the wait is one IORING_OP_WAITID request (Linux 6.7;
 * where the kernel lacks it, the pidfd's readiness); on epoll it is the pidfd's readiness. Every
 * spawned process is released with weft_process_close, which also makes sure no zombie is left.
 *
 * The child starts with the calling thread's signal mask less the signals weft blocked for
 * weft_signal_wait, and with the dispositions exec leaves (an ignored signal stays ignored, a handler
 * is reset to the default). Unless WEFT_PROCESS_KEEP_FDS is given it gets only fds 0, 1 and 2: every
 * other fd is closed in it, close-on-exec or not.
 *
 * The pidfd is opened from the pid just after the spawn. That is safe unless something else reaps
 * the process's children (SIGCHLD set to SIG_IGN, a waitpid(-1) elsewhere), which also takes the exit
 * status away from weft: weft_process_wait then returns -ECHILD.
 * ------------------------------------------------------------------------------------------------ */

/* A child process. weft fills the fields; read them, change only as weft_process_close says. */
typedef struct weft_process {
    pid_t pid;     /* the child's process id */
    int pidfd;     /* a pidfd for it (close-on-exec), -1 once closed */
    int stdin_fd;  /* with WEFT_PROCESS_STDIN, the write end of the pipe that is its stdin; else -1 */
    int stdout_fd; /* with WEFT_PROCESS_STDOUT, the read end of the pipe that is its stdout; else -1 */
    int stderr_fd; /* with WEFT_PROCESS_STDERR, the read end of the pipe that is its stderr; else -1 */
    int status;    /* its wait status once reaped (WIFEXITED, WEXITSTATUS... of <sys/wait.h>), -1 before */
} weft_process;

/* Flags for weft_process_spawn. A stream without its flag is the parent's own. */
#define WEFT_PROCESS_STDIN 0x1        /* the child's stdin is a pipe the parent writes to at stdin_fd */
#define WEFT_PROCESS_STDOUT 0x2       /* its stdout is a pipe the parent reads at stdout_fd */
#define WEFT_PROCESS_STDERR 0x4       /* its stderr is a pipe the parent reads at stderr_fd */
#define WEFT_PROCESS_SEARCH_PATH 0x8  /* a path without '/' is looked up in the caller's PATH (execvp) */
#define WEFT_PROCESS_KEEP_FDS 0x10    /* the child also inherits the fds not marked close-on-exec */

/*
 * Starts the program at path with argv (NULL-terminated; argv[0] is the name it sees for itself) and
 * envp (NULL: the caller's environ), and fills *p. Does not suspend: usable outside a task; the
 * calling thread waits only until the child has begun the program (its exec). The parent's pipe ends
 * are close-on-exec. Returns 0, or a negative errno with no child left running and every fd of *p -1:
 * -EINVAL (p, path or argv NULL, an unknown flag), the exec's error (-ENOENT: no such program,
 * -EACCES: not executable, or a directory, -ENOEXEC: not a format the kernel runs, -E2BIG), -EMFILE or
 * -ENFILE (no fd left for a pipe or the pidfd), -ENOMEM, -EAGAIN (RLIMIT_NPROC).
 */
WEFT_API int weft_process_spawn(weft_process *p, const char *path, char *const argv[], char *const envp[],
                                unsigned flags);

/*
 * Suspends until the child has ended, reaps it and returns its wait status as waitpid stores it
 * (WIFEXITED and WEXITSTATUS, or WIFSIGNALED and WTERMSIG), also kept in p->status. Once it is reaped
 * the call returns that status at once, from anywhere; any number of tasks may wait for one child (the
 * first to run reaps it, and every one returns the same status).
 * Cancellation or a deadline returns -ECANCELED or -ETIMEDOUT and leaves the child alone: it runs on,
 * and can be waited for again, or killed and reaped by weft_process_close. Errors: -EINVAL (p NULL,
 * never spawned, or closed with no status), -EPERM (outside a task), -ECHILD (reaped by someone else).
 */
WEFT_API int weft_process_wait(weft_process *p);

/*
 * Sends sig to the child through its pidfd (pidfd_send_signal), so never to a process that reused its
 * pid; sig 0 only checks. Does not suspend. Returns 0 (also for a child that has ended but is not
 * reaped yet, as kill(2) does), -ESRCH once it is reaped, -EINVAL (p NULL, never spawned, closed with
 * no status, or sig not a signal).
 */
WEFT_API int weft_process_kill(weft_process *p, int sig);

/*
 * Releases p: closes the pipe ends still open and the pidfd (a pipe end may be closed earlier with
 * weft_close, to give the child EOF on its stdin, if the field is then set to -1). A child not yet
 * reaped is killed with SIGKILL and reaped, so no zombie remains, and p->status gets its status. In a
 * task that wait suspends; where nothing can suspend (outside a task, or in a task that is cancelled
 * or past its deadline) it blocks the thread until the kernel has ended the child, which is at once
 * for a child not stuck in the kernel. For a graceful end, kill with SIGTERM and wait before closing.
 * Not while another task waits for p. NULL is ignored.
 */
WEFT_API void weft_process_close(weft_process *p);

/* ------------------------------------------------------------------------------------------------
 * Executor (CPU work and blocking code)
 *
 * Synchronous work inside a task blocks the whole loop: hand it to an executor, a pool of threads.
 * The task parks; the loop runs others; the job's result wakes the task through the loop (one wakeup
 * for many jobs finishing together). The default executor is made on first use, sized by
 * weft_config.executor_threads, shared by the loops of the process and shut down with the last of
 * them. An executor's queue is bounded: a task offloading onto a full queue waits for room; an _async
 * offload is queued past the bound (it never suspends, and is never refused). Nothing is dropped.
 *
 * Cancelling an offload removes it if it has not started. If it has, the caller stays parked until fn
 * returns (fn may be using the caller's memory), and then gets -ECANCELED (-ETIMEDOUT for a deadline).
 * fn runs on another thread: it must not call weft's suspending functions (they return -EPERM there).
 * ------------------------------------------------------------------------------------------------ */

/* asyncio.to_thread(): runs fn(arg) on the default executor; suspends; returns fn's result, or
 * -ECANCELED, -ETIMEDOUT, -EPERM (outside a task), -EINVAL (fn NULL), -ENOMEM. */
WEFT_API intptr_t weft_offload(weft_fn fn, void *arg);

/*
 * loop.run_in_executor(): queues fn(arg) on the default executor and returns a future for its result
 * at once (NULL with errno EPERM outside a loop, EINVAL, ENOMEM). It never waits for room: past the
 * queue's bound the job is queued all the same, in order. The future belongs to the caller:
 * weft_future_free it. Freeing or cancelling
 * it removes a job not yet started (the future completes with -ECANCELED); a job already running
 * runs to its end and the future gets fn's result.
 */
WEFT_API weft_future *weft_offload_async(weft_fn fn, void *arg);

/* A new executor with threads threads (0: number of CPUs) and a queue of 256 jobs per thread.
 * NULL with errno ENOMEM or pthread_create's error. */
WEFT_API weft_executor *weft_executor_new(unsigned threads);

/* The same with a queue of queue_limit jobs (0: 256 per thread). */
WEFT_API weft_executor *weft_executor_new_bounded(unsigned threads, size_t queue_limit);

/* weft_offload on ex. -EINVAL if ex or fn is NULL. */
WEFT_API intptr_t weft_offload_on(weft_executor *ex, weft_fn fn, void *arg);

/*
 * Shuts ex down: jobs not started complete with -ECANCELED, tasks waiting for room get -ECANCELED,
 * running jobs finish, and every thread is joined before it returns. Call it when no task will
 * offload onto ex any more. NULL is ignored.
 */
WEFT_API void weft_executor_free(weft_executor *ex);

/* ------------------------------------------------------------------------------------------------
 * Thread-per-core (one loop per CPU, shared nothing)
 *
 * weft_run_cores runs a loop on each of n threads, each pinned to its CPU, each starting main(arg) as
 * its first task: a server listens with WEFT_REUSEPORT on every loop and the kernel spreads the
 * connections, or one loop accepts and hands connections on with weft_post. Loops share nothing but
 * the default executor (a job's result goes back to the loop that asked). A loop is addressed by its
 * number, 0..weft_loop_count()-1; under weft_run the one loop is number 0.
 *
 * A message to another loop rides its list of cross-thread results: a burst of messages costs the
 * receiver one wakeup, and a busy receiver none. Messages from one sender to one loop start in the
 * order sent. A loop takes messages until its main returns: those sent before are still delivered,
 * and every message a loop accepted runs, exactly once. One that arrives as the loop ends is cancelled
 * with the loop's other tasks and runs all the same (unlike a task cancelled before it starts): its
 * first suspending call returns -ECANCELED, so it can let go of what its argument owns. Later ones are
 * refused with -ESHUTDOWN. Only a loop that could not start (weft_run_cores then returns why) drops
 * what was posted to it, with a line on stderr.
 * ------------------------------------------------------------------------------------------------ */

/*
 * Starts n loops (0: one per CPU in the process's affinity mask; loop i is pinned to the i-th CPU of
 * that mask, cycling when n is larger), runs main(arg) as the first task of each, and returns once
 * every main has returned and every loop is torn down. cfg (NULL: defaults) holds for every loop;
 * they all run the backend the first one chose, and a fallback to epoll is said once. Returns 0, the
 * first negative main result by loop index, or a negative errno when the loops could not start
 * (-EINVAL: main NULL or n absurd; -EBUSY: called from a loop's thread; what weft_loop_new gives).
 */
WEFT_API int weft_run_cores(unsigned n, weft_fn main, void *arg, const weft_config *cfg);

/* The calling thread's loop number: 0..weft_loop_count()-1 (0 under weft_run, and outside a loop). */
WEFT_API unsigned weft_loop_id(void);

/* The loops of the running weft_run_cores (1 under weft_run, 0 outside any). A thread that is none
 * of the loops (an executor worker, a thread of the application's) sees the weft_run_cores running
 * in the process. */
WEFT_API unsigned weft_loop_count(void);

/*
 * Starts fn(arg) as a detached task on loop number loop (its failure is reported like any detached
 * task's). Any thread may call it; it does not suspend. Once it has returned 0, fn runs exactly once,
 * even if the loop's main returns first (fn then runs cancelled: see above). Returns 0, -EINVAL (no
 * such loop, fn NULL), -ESHUTDOWN (that loop's main has returned), -ENOMEM.
 */
WEFT_API int weft_post(unsigned loop, weft_fn fn, void *arg);

/*
 * Runs fn(arg) as a task on loop number loop and suspends until it ends; returns its result (Seastar's
 * submit_to). The caller's own loop may be named too. Cancelling the caller (or its deadline passing)
 * cancels the remote task and still waits for it to end, as fn may be using the caller's memory; then
 * returns -ECANCELED (-ETIMEDOUT), or the task's result if it returned anything but -ECANCELED.
 * Errors: those of weft_post, -EPERM (outside a task), -ECANCELED, -ETIMEDOUT.
 */
WEFT_API intptr_t weft_submit_to(unsigned loop, weft_fn fn, void *arg);

/* ------------------------------------------------------------------------------------------------
 * Diagnostics
 *
 * weft says on stderr, one "weft: " line each, what asyncio's debug mode would, always on:
 *   - a task that runs longer than slow_task_ns (default 100 ms, WEFT_SLOW_MS) without suspending, by
 *     name, while it still runs (a watchdog thread sees the loop has not turned), and again with the
 *     total when it lets go. Time the loop's thread spent ready but waiting for a CPU (another
 *     process's turn) is not the task's and is not counted; time blocked in a system call is;
 *   - a detached task that fails, with its error, when it ends; at loop end, every task that was
 *     neither joined nor detached ("task 'x' was never joined");
 *   - a future freed with an error result that nobody awaited;
 *   - a task that overflows its stack, by name, before the process dies of SIGSEGV;
 *   - io_uring refused, and why, when the loop falls back to epoll.
 * With weft_config.trace_path set it also writes a timeline of the loop (weft_trace_flush, below).
 * ------------------------------------------------------------------------------------------------ */

/* A static description of err (negative or positive errno); "Success" for 0. Never NULL. */
WEFT_API const char *weft_strerror(int err);

/*
 * Writes to out a picture of the calling thread's loop: a line with its task, I/O, offload and timer
 * counts, then a line per live task (joined or detached ones until they are freed) with its name and
 * number, its state, and for a parked task how long it has been parked, what it waits in (the I/O
 * request's call, fd and size; the future, the task joined, a sleep, a lock or channel, an offload)
 * and when its sleep or deadline ends; and how much of its stack has been touched (resident pages
 * from the top down: a pooled stack counts the pages earlier tasks touched). Call it from a task or
 * a callback, e.g. on SIGUSR1 read through weft_signal_wait (the examples do); never from a signal
 * handler. Returns the number of tasks listed, -EPERM outside a loop's thread, -EINVAL if out is NULL.
 * Costs the loop nothing until called (a park records a timestamp from the CPU's counter).
 */
WEFT_API int weft_tasks_dump(FILE *out);

/*
 * The timeline trace. With weft_config.trace_path (or WEFT_TRACE) set, the loop records what it does
 * and writes it, when each run of the loop ends, as a Chrome Trace Event JSON file that Perfetto
 * (ui.perfetto.dev) and chrome://tracing open, and bench/trace_png.py draws: a row per task, named
 * ("task 'name' (#id)"), with its runs, and between them what it waited in (the I/O call with its fd
 * and size, a future, a join, a sleep, a channel, a lock...) and how long it then waited to run; each
 * I/O request from submission to completion with its opcode, fd, size and result; a row for the loop
 * with each poll of the kernel (what it submitted and reaped, whether it could sleep), callbacks and
 * timers; a row per executor thread with this loop's jobs; and the watchdog's reports of a task
 * blocking the loop as "stall" events naming it. Memory is bounded: the trace keeps the newest
 * trace_events events and says in the file how many older ones it dropped. Off (the default), it
 * costs each place it records one test of a pointer. docs/trace.md has the details.
 *
 * weft_trace_flush writes the file now, with what the trace holds so far (a long-running server's
 * trace is otherwise written only when its loop ends), and recording goes on. Call it on the loop's
 * thread, in a task or a callback; it does not suspend, and blocks the loop while it writes (tens
 * of milliseconds for a full trace of 65536 events). Returns the number of events written, -EPERM
 * outside a loop's thread, -ENOENT if the loop does not trace, or the errno of writing the file
 * (-ENOSPC...), also said on stderr; the trace is kept either way.
 */
WEFT_API int weft_trace_flush(void);

/* Counters of one loop since it was created. */
typedef struct weft_stats {
    uint64_t tasks_spawned;  /* weft_spawn calls that made a task */
    uint64_t tasks_live;     /* tasks not yet ended */
    uint64_t tasks_peak;     /* the most tasks alive at once */
    uint64_t switches;       /* context switches into a task or back to the loop */
    uint64_t submissions;    /* requests started: SQEs handed to the kernel on io_uring (cancels and
                                the loop's own wake read included); I/O calls started on epoll */
    uint64_t completions;    /* requests completed: CQEs reaped on io_uring, calls finished on epoll */
    uint64_t syscalls;       /* system calls made by the loop's thread for I/O: io_uring_enter on
                                io_uring; epoll_wait, epoll_ctl and every non-blocking attempt on
                                epoll (calls run on executor threads are not counted) */
    uint64_t sq_full;        /* times the SQ was full and had to be flushed before more work fit */
    uint64_t cq_overflows;   /* times the kernel reported CQ overflow (no CQE is lost: NODROP) */
    uint64_t remote_wakeups; /* futures resolved from other threads (executor jobs included) */
    uint64_t executor_jobs;  /* jobs offloaded to an executor (offloaded_ops included) */
    uint64_t offloaded_ops;  /* I/O calls run as blocking calls on the executor: files on epoll, and
                                opcodes the running kernel's io_uring lacks */
    uint64_t stacks_mapped;  /* task stacks ever mapped */
    uint64_t backend_fallbacks; /* 1 if io_uring was refused and the loop runs on epoll */
    uint64_t slow_task_reports; /* tasks reported for holding the loop longer than slow_task_ns */
    uint64_t accept_backoffs;   /* waits in weft_accept because the process was out of fds */
    uint64_t idle_polls;        /* idle polls (idle_poll_ns) that found work before their time ran out */
    uint64_t idle_poll_misses;  /* idle polls that found nothing and went on to sleep */
    uint64_t stacks_trimmed;    /* free stacks whose pages were given back while the loop idled (beyond
                                   the 64 most recently freed, which stay resident for reuse) */
    uint64_t ring_wakes;        /* other loops woken from this one with io_uring's MSG_RING rather than
                                   their wake eventfd (weft_post, weft_submit_to, resolutions) */
    /* Sends and batched waiting (weft_config.send_zc_min, min_wait_ns). */
    uint64_t send_zc;           /* sends that went out as IORING_OP_SEND_ZC */
    uint64_t send_zc_fallbacks; /* sends of send_zc_min bytes or more that went out as plain sends: the
                                   kernel lacks SEND_ZC, or the socket refused it (EOPNOTSUPP: Unix
                                   sockets, for one; weft then remembers the fd until weft_close) */
    uint64_t send_zc_notifs;    /* zero-copy notifications awaited: the kernel letting go of a buffer */
    uint64_t send_zc_copied;    /* of those, the ones where the kernel copied the data after all (it
                                   does on loopback, and for devices without scatter-gather) */
    uint64_t batched_waits;     /* sleeps in the kernel with a minimum wait (min_wait_ns) */
    /* Receive streams (io_uring; weft_config.recv_*). */
    uint64_t recv_arms;         /* multishot receives armed: one per connection, and again after a
                                   pause, an empty ring, or the kernel ending one */
    uint64_t recv_kept_bytes;   /* bytes that arrived before a read asked for them, and were kept */
    uint64_t recv_kept_now;     /* bytes kept for readers now, over all connections */
    uint64_t recv_lends;        /* weft_recv_borrow views lent straight from the ring buffer the
                                   kernel filled: no copy at all */
    uint64_t recv_bufs_out;     /* ring buffers filled by the kernel and not yet back in the ring now
                                   (between a completion and weft taking its bytes, or lent as a view) */
    uint64_t recv_bufs_peak;    /* the most ring buffers out at once */
    uint64_t recv_bufs;         /* ring buffers made (recv_buffers, then grown) */
    uint64_t recv_enobufs;      /* streams the kernel ended because the ring was empty (each is armed
                                   again once buffers are back) */
    uint64_t recv_pauses;       /* streams paused because their reader left recv_keep_max bytes unread */
    uint64_t recv_restarts;     /* streams restarted because the kernel did not wake them for bytes their
                                   socket had (looked at once a second for reads waiting over a second) */
    uint64_t wake_writes;       /* writes to this loop's wake eventfd to end its sleep in the kernel, by
                                   other threads (executor results, resolutions and calls from threads,
                                   weft_post) and, on epoll, other loops: a burst while it sleeps costs
                                   one, and none is made while it runs. A loop on io_uring wakes another
                                   with MSG_RING instead, counted in the sender's ring_wakes. */
} weft_stats;

/*
 * Growing without breaking programs: later versions add counters at the end of weft_stats. The two
 * calls below are macros that pass sizeof(weft_stats) as the program's header has it, and the library
 * writes at most that many bytes: a program built against an older header gets the counters it
 * knows, and one built against a newer header, run with an older library, gets 0 in the counters that
 * library does not keep. weft_stats_get_sized and weft_loop_stats_sized take the size explicitly
 * (from other languages, say); a size below weft 0.1's structure is -EINVAL. The same holds for
 * weft_stats_get_loop below. The functions named weft_stats_get, weft_loop_stats and
 * weft_stats_get_loop themselves (called through a pointer, or with the name in parentheses) fill
 * weft 0.1's counters, tasks_spawned to stacks_trimmed.
 */

/* Copies the counters of the loop running on this thread. 0, -EINVAL (out NULL), -EPERM (no loop). */
WEFT_API int weft_stats_get_sized(weft_stats *out, size_t size);
WEFT_API int weft_stats_get(weft_stats *out);
#define weft_stats_get(out) weft_stats_get_sized((out), sizeof(weft_stats))

/* The counters of l, running or not (for reading after weft_loop_run returns). 0 or -EINVAL. */
WEFT_API int weft_loop_stats_sized(const weft_loop *l, weft_stats *out, size_t size);
WEFT_API int weft_loop_stats(const weft_loop *l, weft_stats *out);
#define weft_loop_stats(l, out) weft_loop_stats_sized((l), (out), sizeof(weft_stats))

/* The counters of loop number loop of a weft_run_cores, read on that loop's own thread (a task there
 * copies them: suspends). 0, or weft_submit_to's errors; -EINVAL if out is NULL. */
WEFT_API int weft_stats_get_loop_sized(unsigned loop, weft_stats *out, size_t size);
WEFT_API int weft_stats_get_loop(unsigned loop, weft_stats *out);
#define weft_stats_get_loop(loop, out) weft_stats_get_loop_sized((loop), (out), sizeof(weft_stats))

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */

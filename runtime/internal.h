/*
 * Private declarations shared by the files of runtime/, one header per concept, all included here.
 * Nothing here is part of the API.
 *
 * One request through the proactor, weft_recv: net.c fills a weft__op (op.h) on the task's stack;
 * io.c's weft__io_wait hands it to the backend, where uring.c turns it into an SQE, and then waits
 * through loop.c's one wait (weft__loop_wait_here: the task polls from its own stack while nothing
 * else can run; otherwise sched.c parks it and switches to the next ready task). The loop's next
 * io_uring_enter submits the SQE and reaps its CQE; uring.c's reap calls the op's complete(), which
 * stores the result and, if the task parked, makes it ready; the wait ends and weft_recv returns it.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "weft.h"

#include <errno.h>
#if defined(WEFT_SWITCH_UCONTEXT)
#include <setjmp.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT__CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define WEFT__TLS __thread __attribute__((tls_model("initial-exec")))

#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif

#include "list.h"
#include "fiber.h"
#include "stack.h"
#include "timer.h"
#include "future.h"
#include "loop.h"
#include "task.h"
#include "op.h"
#include "rx.h"
#include "exec.h"
#include "trace.h"
#include "fault.h"

/* The calling thread's signal mask without the signals weft blocked for weft_signal_wait (signal.c):
 * the mask a child process starts with. */
void weft__signal_mask_own(sigset_t *mask);

#endif /* WEFT_INTERNAL_H */

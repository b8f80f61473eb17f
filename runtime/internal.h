/*
 * Private declarations shared by the files of runtime/. Nothing here is part of the API.
 *
 * One request through the proactor: weft_nop() (uring.c) fills an SQE whose user_data points at a
 * struct weft__op on the caller's stack and parks the task (sched.c); the loop submits every queued SQE
 * once per turn; the CQE's handler stores the result and makes the task ready (sched.c); the scheduler
 * switches to it (fiber.c) and weft_nop returns the result.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "weft.h"

#include <errno.h>
#if defined(WEFT_SWITCH_UCONTEXT)
#include <setjmp.h>
#endif
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
#include "exec.h"
#include "fault.h"

#endif /* WEFT_INTERNAL_H */

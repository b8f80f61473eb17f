/* fault.c: fault injection (-Dfault_injection=true). Part of internal.h; included through it. */
#ifndef WEFT_FAULT_H
#define WEFT_FAULT_H

/* ---- fault.c: fault injection (-Dfault_injection=true) ------------------------------------------ */

enum weft__fault_site {
    WEFT__FAULT_ENTER,       /* io_uring_enter returns error (-EBUSY, -EINTR) without entering */
    WEFT__FAULT_SQ_FULL,     /* the SQ looks full: the submission path must flush and retry */
    WEFT__FAULT_TASK_ALLOC,  /* allocating a task fails */
    WEFT__FAULT_STACK_ALLOC, /* allocating a task's stack fails */
    WEFT__FAULT_RECV_ASLEEP, /* a receive stream is armed as a request the kernel never completes on its
                                own (a POLLPRI poll): what a missed wakeup of its multishot looks like */
    WEFT__FAULT_BACKEND_START, /* weft_loop_run: the backend's start fails (before it does anything) */
    WEFT__FAULT_WATCHDOG_START, /* weft_loop_run: the watchdog's thread cannot be made (as pthread_create) */
    WEFT__FAULT_SITES
};

#if defined(WEFT_FAULT_INJECTION)
/* The next count ops of opcode, after skip, complete with error at once (error < 0) or have their
 * length capped at error bytes (error > 0: a short read or write). */
void weft__fault_op(int opcode, int error, unsigned skip, unsigned count);
void weft__fault_site(enum weft__fault_site site, int error, unsigned skip, unsigned count);
void weft__fault_clear(void);
int weft__fault_take_op(int opcode);
int weft__fault_take(enum weft__fault_site site);
#define WEFT__FAULT_OP(opcode) weft__fault_take_op(opcode)
#define WEFT__FAULT(site) weft__fault_take(site)
#else
#define WEFT__FAULT_OP(opcode) 0
#define WEFT__FAULT(site) 0
#endif

#endif /* WEFT_FAULT_H */

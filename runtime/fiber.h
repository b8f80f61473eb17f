/* fiber.c: execution contexts and the switch. Part of internal.h; included through it. */
#ifndef WEFT_FIBER_H
#define WEFT_FIBER_H

/* ---- fiber.c: execution contexts ------------------------------------------------------------- */

/*
 * A saved execution context. With the assembly switch it is a stack pointer: the callee-saved
 * registers and the resume address are on the suspended stack itself. The sanitizer fields describe
 * the stack the context runs on so ASan and TSan can follow the switch.
 */
typedef struct weft__ctx {
#if defined(WEFT_SWITCH_UCONTEXT)
    jmp_buf jmp;  /* where _longjmp resumes it */
    void *fresh;  /* the ucontext_t to enter it with, until its first switch */
#else
    void *sp;
#endif
    const void *stack_lo; /* lowest usable byte, NULL for the thread's own stack */
    size_t stack_size;
#if WEFT__ASAN
    void *asan_fake_stack;
#endif
#if WEFT__TSAN
    void *tsan_fiber;
#endif
} weft__ctx;

/* Makes ctx start entry(arg) on [stack_lo, stack_lo + size) at its first switch. entry never returns. */
void weft__ctx_make(weft__ctx *ctx, void *stack_lo, size_t size, void (*entry)(void *), void *arg);
/* Records the calling thread's floating-point control state for the contexts made afterwards. */
void weft__ctx_capture_fpu(void);
/* Describes the calling thread's own context (the loop's), to be switched away from and back to. */
void weft__ctx_init_thread(weft__ctx *ctx);
/* Releases what ctx_make allocated for sanitizers (the TSan fiber). */
void weft__ctx_destroy(weft__ctx *ctx);
#if WEFT__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if WEFT__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif
/* The raw switch: runtime/arch/<arch>/switch_<arch>.S, or _setjmp/_longjmp in fiber.c. */
void weft__switch_raw(weft__ctx *from, weft__ctx *to);

#if defined(__x86_64__) && !defined(WEFT_SWITCH_UCONTEXT)
/*
 * Enters weft__switch_asm with a jump, not a call: the switch leaves with an indirect jump, so a call
 * would push a return-stack-buffer entry that no ret pops, and every return after the switch would be
 * mispredicted. The resume address is pushed by hand, after stepping over the red zone of the
 * function this is inlined into.
 *
 * Every register but rbp and rsp is declared clobbered, as the other context may change any of them.
 * The compiler then saves only the values live across the switch, usually fewer than the six
 * callee-saved registers a switch routine would save blindly; rbp (which may be the frame pointer)
 * and the resume address are saved by weft__switch_asm itself.
 */
static inline void weft__switch_x86_64(void **from_sp, void *to_sp)
{
    __asm__ volatile("subq $128, %%rsp\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "jmp weft__switch_asm\n"
                     "1:\n\t"
                     "addq $128, %%rsp\n\t"
                     : "+D"(from_sp), "+S"(to_sp)
                     :
                     : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory",
                       "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)",
                       "st(4)", "st(5)", "st(6)", "st(7)");
}
#endif

/*
 * Saves the running context in from and resumes to; returns when something switches back to from.
 * Inline: it is the hot path of every hand-over between tasks.
 */
static inline void weft__ctx_switch(weft__ctx *from, weft__ctx *to)
{
#if WEFT__ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack_lo, to->stack_size);
#endif
#if WEFT__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#if defined(WEFT_SWITCH_UCONTEXT)
    weft__switch_raw(from, to);
#elif defined(__x86_64__)
    weft__switch_x86_64(&from->sp, to->sp);
#else
    void weft__switch_asm(void **from_sp, void *to_sp);
    weft__switch_asm(&from->sp, to->sp);
#endif
#if WEFT__ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
}
/* Like ctx_switch, for a context that will never be resumed (a finished task). */
__attribute__((noreturn)) void weft__ctx_exit(weft__ctx *from, weft__ctx *to);
/* Called first thing on a new stack, to complete the switch that entered it. */
void weft__ctx_entered(weft__ctx *self);

#endif /* WEFT_FIBER_H */

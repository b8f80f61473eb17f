/*
 * Execution contexts: making a context on a fresh stack and switching between contexts.
 *
 * The default switch is hand-written assembly (runtime/arch/<arch>/): a handful of pushes and pops and
 * an indirect jump, about the cost of a function call. With -Dswitch=ucontext, makecontext enters a
 * fresh stack once and _setjmp/_longjmp switch after that; swapcontext is never used for switching, as
 * it makes a sigprocmask system call every time.
 *
 * Every switch is announced to the sanitizers: ASan must know which stack is live to report stack
 * errors and to keep fake stacks (detect_stack_use_after_return) per fiber; TSan keeps a happens-before
 * clock per fiber.
 */
#include "internal.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(WEFT_SWITCH_UCONTEXT)
#undef _FORTIFY_SOURCE /* longjmp_chk refuses to jump to another stack */
#include <ucontext.h>
#endif

#if !defined(WEFT_SWITCH_UCONTEXT)
void weft__switch_asm(void **from_sp, void *to_sp);
void weft__fiber_start_asm(void);
#endif

void weft__ctx_init_thread(weft__ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
#if WEFT__ASAN
    /* ASan needs the bounds of the stack it switches back to. */
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        size_t size;
        if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
            ctx->stack_lo = lo;
            ctx->stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
#endif
#if WEFT__TSAN
    ctx->tsan_fiber = __tsan_get_current_fiber();
#endif
}

#if defined(WEFT_SWITCH_UCONTEXT)
/* makecontext passes int arguments only: the two halves of the pointers travel separately. */
static void ucontext_start(unsigned entry_hi, unsigned entry_lo, unsigned arg_hi, unsigned arg_lo)
{
    void (*entry)(void *) = (void (*)(void *))(((uintptr_t)entry_hi << 32) | entry_lo);
    void *arg = (void *)(((uintptr_t)arg_hi << 32) | arg_lo);
    entry(arg);
    __builtin_trap();
}
#endif

/*
 * The floating-point control state new contexts start with: MXCSR and the x87 control word (x86-64),
 * FPCR (aarch64). Reading them costs tens of cycles, so a loop captures them once when it starts
 * running and every task it makes starts with the running thread's settings.
 */
static WEFT__TLS struct {
    bool valid;
    uint32_t mxcsr;
    uint16_t x87_cw;
    uint64_t fpcr;
} fpu_env;

static void fpu_read(void)
{
#if defined(__x86_64__)
    __asm__ volatile("stmxcsr %0" : "=m"(fpu_env.mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpu_env.x87_cw));
#elif defined(__aarch64__)
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpu_env.fpcr));
#endif
}

void weft__ctx_capture_fpu(void)
{
    fpu_read();
    fpu_env.valid = true;
}

void weft__ctx_make(weft__ctx *ctx, void *stack_lo, size_t size, void (*entry)(void *), void *arg)
{
    if (!fpu_env.valid)
        fpu_read();
    ctx->stack_lo = stack_lo;
    ctx->stack_size = size;
#if WEFT__ASAN
    ctx->asan_fake_stack = NULL;
#endif
#if WEFT__TSAN
    ctx->tsan_fiber = __tsan_create_fiber(0);
#endif
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
#if defined(WEFT_SWITCH_UCONTEXT)
    /* The ucontext_t is only needed until the first switch: keep it at the top of the new stack. */
    top -= (sizeof(ucontext_t) + 15) & ~(size_t)15;
    ucontext_t *uc = (ucontext_t *)top;
    getcontext(uc);
    uc->uc_stack.ss_sp = stack_lo;
    uc->uc_stack.ss_size = top - (uintptr_t)stack_lo;
    uc->uc_link = NULL;
    uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;
    makecontext(uc, (void (*)(void))ucontext_start, 4, (unsigned)(e >> 32), (unsigned)e, (unsigned)(a >> 32),
                (unsigned)a);
    ctx->fresh = uc;
#elif defined(__x86_64__)
    /*
     * From the top: the creator's {MXCSR, x87 CW}, then entry and arg for weft__fiber_start_asm, then
     * the frame weft__switch_asm pops: rbp and the resume address. rsp is 16-aligned at the start.
     */
    top -= 16;
    uint32_t *fpu = (uint32_t *)top;
    fpu[0] = fpu_env.mxcsr;
    fpu[1] = fpu_env.x87_cw;
    void **frame = (void **)(top - 4 * sizeof(void *));
    frame[0] = NULL;                          /* rbp */
    frame[1] = (void *)weft__fiber_start_asm; /* resume address */
    frame[2] = (void *)entry;
    frame[3] = arg;
    ctx->sp = frame;
#elif defined(__aarch64__)
    /* The frame weft__switch_asm restores: x19..x30 then d8..d15, 0xa0 bytes. */
    void **frame = (void **)(top - 0xa0);
    memset(frame, 0, 0xa0);
    frame[0] = (void *)entry;                   /* x19 */
    frame[1] = arg;                             /* x20 */
    frame[2] = (void *)(uintptr_t)fpu_env.fpcr; /* x21 */
    frame[11] = (void *)weft__fiber_start_asm; /* x30 */
    ctx->sp = frame;
#else
#error "no assembly context switch for this architecture: build with -Dswitch=ucontext"
#endif
}

void weft__ctx_destroy(weft__ctx *ctx)
{
#if WEFT__TSAN
    if (ctx->tsan_fiber) {
        __tsan_destroy_fiber(ctx->tsan_fiber);
        ctx->tsan_fiber = NULL;
    }
#else
    (void)ctx;
#endif
}

void weft__switch_raw(weft__ctx *from, weft__ctx *to)
{
#if defined(WEFT_SWITCH_UCONTEXT)
    if (_setjmp(from->jmp) == 0) {
        if (to->fresh) {
            ucontext_t *uc = to->fresh;
            to->fresh = NULL;
            setcontext(uc);
            __builtin_trap();
        }
        _longjmp(to->jmp, 1);
    }
#elif defined(__x86_64__)
    weft__switch_x86_64(&from->sp, to->sp);
#else
    weft__switch_asm(&from->sp, to->sp);
#endif
}

void weft__ctx_exit(weft__ctx *from, weft__ctx *to)
{
#if WEFT__ASAN
    /* NULL: this fiber is gone, so ASan frees its fake stack. */
    __sanitizer_start_switch_fiber(NULL, to->stack_lo, to->stack_size);
#endif
#if WEFT__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    weft__switch_raw(from, to);
    __builtin_unreachable();
}

void weft__ctx_entered(weft__ctx *self)
{
    (void)self;
#if WEFT__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

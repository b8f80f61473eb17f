/*
 * Context switch for x86-64 System V.
 *
 * void weft__switch_asm(void **from_sp, void *to_sp)
 *   Pushes the callee-saved registers on the current stack, stores the stack pointer in *from_sp, loads
 *   to_sp, pops the registers saved there and jumps to the resume address with an indirect jmp rather
 *   than ret: the return-stack predictor cannot know the other stack, and an unbalanced ret poisons it
 *   for the caller's later returns.
 *
 *   MXCSR and the x87 control word are not switched. The ABI makes their control bits callee-saved, and
 *   every fiber starts with the values of the context that created it (weft__fiber_start_asm loads them
 *   once), so a switch would only ever restore what is already there — at the price of an ldmxcsr, which
 *   serialises the pipeline.
 */
    .text
    .globl weft__switch_asm
    .hidden weft__switch_asm
    .type weft__switch_asm, @function
    .p2align 4
weft__switch_asm:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popq %rcx
    jmpq *%rcx
    .cfi_endproc
    .size weft__switch_asm, .-weft__switch_asm

/*
 * First code run on a new stack. weft__ctx_make laid out the frame so that the pops above leave
 * r12 = entry function, r13 = its argument, r14 = the creator's {MXCSR, x87 control word}, and rsp
 * 16-byte aligned. entry never returns; ud2 makes a return a loud bug.
 */
    .globl weft__fiber_start_asm
    .hidden weft__fiber_start_asm
    .type weft__fiber_start_asm, @function
    .p2align 4
weft__fiber_start_asm:
    .cfi_startproc
    .cfi_undefined rip
    ldmxcsr (%r14)
    fldcw 4(%r14)
    movq %r13, %rdi
    xorl %ebp, %ebp
    callq *%r12
    ud2
    .cfi_endproc
    .size weft__fiber_start_asm, .-weft__fiber_start_asm

    .section .note.GNU-stack, "", @progbits

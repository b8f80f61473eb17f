/*
 * Context switch for x86-64 System V.
 *
 * weft__switch_asm is entered by a jump (weft__switch_x86_64 in runtime/internal.h) with the resume
 * address already pushed, rdi = where to store the current stack pointer, rsi = the stack pointer to
 * resume. It saves rbp, switches stacks, restores rbp and jumps to the other context's resume address
 * with an indirect jmp: entered by jmp and left by jmp, the switch leaves the return-stack buffer
 * balanced. The other callee-saved registers are declared clobbered at the call site, so the compiler
 * saves only those that hold live values.
 *
 * MXCSR and the x87 control word are not switched. The ABI makes their control bits callee-saved, and
 * every fiber starts with the values its loop's thread had when the loop started (weft__fiber_start_asm
 * loads them once), so a switch would only ever restore what is already there, at the price of an
 * ldmxcsr, which serialises the pipeline.
 */
    .text
    .globl weft__switch_asm
    .hidden weft__switch_asm
    .type weft__switch_asm, @function
    .p2align 4
weft__switch_asm:
    .cfi_startproc
    pushq %rbp
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %rbp
    popq %rcx
    jmpq *%rcx
    .cfi_endproc
    .size weft__switch_asm, .-weft__switch_asm

/*
 * First code run on a new stack. weft__ctx_make left [entry, arg, {MXCSR, x87 CW}] at rsp, which is
 * 16-byte aligned. entry never returns; ud2 makes a return a loud bug.
 */
    .globl weft__fiber_start_asm
    .hidden weft__fiber_start_asm
    .type weft__fiber_start_asm, @function
    .p2align 4
weft__fiber_start_asm:
    .cfi_startproc
    .cfi_undefined rip
    movq (%rsp), %rax
    movq 8(%rsp), %rdi
    ldmxcsr 16(%rsp)
    fldcw 20(%rsp)
    xorl %ebp, %ebp
    callq *%rax
    ud2
    .cfi_endproc
    .size weft__fiber_start_asm, .-weft__fiber_start_asm

    .section .note.GNU-stack, "", @progbits

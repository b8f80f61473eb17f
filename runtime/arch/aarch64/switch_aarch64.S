/*
 * Context switch for AArch64 (AAPCS64).
 *
 * void weft__switch_asm(void **from_sp, void *to_sp)
 *   Saves x19-x30 and d8-d15 (the callee-saved set) on the current stack, stores sp in *from_sp, loads
 *   to_sp, restores the registers saved there and branches to the saved x30 with br, not ret (see the
 *   x86-64 file for why). FPCR is not switched: every fiber starts with its loop thread's value
 *   (weft__fiber_start_asm sets it once) and the ABI keeps it unchanged across calls.
 */
    .text
    .globl weft__switch_asm
    .hidden weft__switch_asm
    .type weft__switch_asm, %function
    .p2align 4
weft__switch_asm:
    sub sp, sp, #0xa0
    stp x19, x20, [sp, #0x00]
    stp x21, x22, [sp, #0x10]
    stp x23, x24, [sp, #0x20]
    stp x25, x26, [sp, #0x30]
    stp x27, x28, [sp, #0x40]
    stp x29, x30, [sp, #0x50]
    stp d8,  d9,  [sp, #0x60]
    stp d10, d11, [sp, #0x70]
    stp d12, d13, [sp, #0x80]
    stp d14, d15, [sp, #0x90]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0x00]
    ldp x21, x22, [sp, #0x10]
    ldp x23, x24, [sp, #0x20]
    ldp x25, x26, [sp, #0x30]
    ldp x27, x28, [sp, #0x40]
    ldp x29, x30, [sp, #0x50]
    ldp d8,  d9,  [sp, #0x60]
    ldp d10, d11, [sp, #0x70]
    ldp d12, d13, [sp, #0x80]
    ldp d14, d15, [sp, #0x90]
    add sp, sp, #0xa0
    br x30
    .size weft__switch_asm, .-weft__switch_asm

/* First code on a new stack: x19 = entry, x20 = argument, x21 = the loop thread's FPCR. */
    .globl weft__fiber_start_asm
    .hidden weft__fiber_start_asm
    .type weft__fiber_start_asm, %function
    .p2align 4
weft__fiber_start_asm:
    msr fpcr, x21
    mov x0, x20
    mov x29, #0
    blr x19
    brk #0
    .size weft__fiber_start_asm, .-weft__fiber_start_asm

    .section .note.GNU-stack, "", %progbits

    .syntax unified
    .thumb
    .section .text.microcnn_dot2x2_s8,"ax",%progbits
    .global microcnn_dot2x2_s8
    .type microcnn_dot2x2_s8,%function
    .thumb_func
    .p2align 2
microcnn_dot2x2_s8:
    push    {r4-r11, lr}
    movs    r4, #0              @ a00 = Σ w0·x0
    movs    r5, #0              @ a01 = Σ w0·x1
    movs    r6, #0              @ a10 = Σ w1·x0
    movs    r7, #0              @ a11 = Σ w1·x1
    subs    r3, r3, #4          @ row 1 relative to the post-incremented row-0 pointer
1:
    ldr     r8, [r1, #512]      @ x1 word
    ldr     r10, [r1], #4       @ x0 word
    sxtb16  r9, r8, ror #8      @ x1 bytes 1, 3
    sxtb16  r8, r8              @ x1 bytes 0, 2
    sxtb16  r11, r10, ror #8    @ x0 bytes 1, 3
    sxtb16  r10, r10            @ x0 bytes 0, 2
    ldr     r12, [r0], #4       @ w0 word
    sxtb16  lr, r12             @ w0 bytes 0, 2
    sxtb16  r12, r12, ror #8    @ w0 bytes 1, 3
    smlad   r4, lr, r10, r4
    smlad   r4, r12, r11, r4
    smlad   r5, lr, r8, r5
    smlad   r5, r12, r9, r5
    ldr     r12, [r0, r3]       @ w1 word
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r6, lr, r10, r6
    smlad   r6, r12, r11, r6
    smlad   r7, lr, r8, r7
    smlad   r7, r12, r9, r7
    subs    r2, r2, #1
    bne     1b
    ldr     r0, [sp, #36]       @ out (fifth argument, above the nine saved registers)
    stm     r0, {r4-r7}
    pop     {r4-r11, pc}
    .size microcnn_dot2x2_s8, . - microcnn_dot2x2_s8

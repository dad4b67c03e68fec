@ microcnn_dot4x1_s8(w, x, quads, stride, out, offset) for Armv7-M without the DSP extension
@ (Cortex-M3); [sp + 4] is the input offset −zp as a plain word.
@   r0 = w: row 0 (rows 1–3 are 1, 2, 3 × `stride` bytes further), r1 = x, r2 = quads ≥ 1,
@   r3 = stride, [sp] = out: out[r] = Σ w_r·(x + offset) over 4·quads taps.
@ Per tap: one input load and offset add shared by the four rows, then a load and an MLA per
@ row — 2.6 instructions per MAC with the loop unrolled over the four taps of a quad.
@ microcnn_dot2x1_s8: the same for two rows (out[0], out[1]), 3.1 instructions per MAC.
.macro microcnn_dot4x1_tap
    ldrsb   r10, [r1], #1           @ x
    ldrsb   r11, [r0, r3]           @ row 1
    add     r10, r10, r9            @ x + offset
    ldrsb   r12, [r0, r3, lsl #1]   @ row 2
    mla     r5, r11, r10, r5
    ldrsb   lr, [r0, r8]            @ row 3
    mla     r6, r12, r10, r6
    ldrsb   r11, [r0], #1           @ row 0, and on to the next tap
    mla     r7, lr, r10, r7
    mla     r4, r11, r10, r4
.endm
.macro microcnn_dot2x1_tap
    ldrsb   r10, [r1], #1           @ x
    ldrsb   r11, [r0, r3]           @ row 1
    add     r10, r10, r9            @ x + offset
    ldrsb   r12, [r0], #1           @ row 0, and on to the next tap
    mla     r5, r11, r10, r5
    mla     r4, r12, r10, r4
.endm
.macro microcnn_v7m_dot name, tap, rows
    .section .text.\name,"ax",%progbits
    .global \name
    .type \name,%function
    .thumb_func
    .p2align 2
\name:
    push    {r4-r11, lr}
    ldr     r9, [sp, #40]           @ offset
    add     r8, r3, r3, lsl #1      @ 3 · stride
    movs    r4, #0
    movs    r5, #0
    movs    r6, #0
    movs    r7, #0
1:
    \tap
    \tap
    \tap
    \tap
    subs    r2, r2, #1
    bne     1b
    ldr     r0, [sp, #36]           @ out
    .if \rows == 4
    stm     r0, {r4-r7}
    .else
    stm     r0, {r4-r5}
    .endif
    pop     {r4-r11, pc}
    .size \name, . - \name
.endm
microcnn_v7m_dot microcnn_dot4x1_s8, microcnn_dot4x1_tap, 4
microcnn_v7m_dot microcnn_dot2x1_s8, microcnn_dot2x1_tap, 2
.purgem microcnn_v7m_dot
.purgem microcnn_dot4x1_tap
.purgem microcnn_dot2x1_tap

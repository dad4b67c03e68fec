    .syntax unified
    .thumb
    .section .text.microcnn_dot4x1_s8,"ax",%progbits
    .global microcnn_dot4x1_s8
    .type microcnn_dot4x1_s8,%function
    .thumb_func
    .p2align 2
@ microcnn_dot4x1_s8(w, x, quads, stride, out, offset_pair):
@   r0 = w: row 0 (rows 1–3 are 1, 2, 3 × `stride` bytes further), r1 = x, r2 = quads ≥ 1,
@   r3 = stride, [sp] = out, [sp + 4] = the input offset −zp in both halfwords:
@   out[r] = Σ w_r·(x + offset) over 4·quads taps.
.macro microcnn_dot4x1_quad
    ldr     r10, [r1], #4       @ x word
    sxtab16 r11, r9, r10, ror #8 @ x bytes 1, 3 + offset
    sxtab16 r10, r9, r10        @ x bytes 0, 2 + offset
    ldr     r12, [r0, r3]       @ row 1
    sxtb16  lr, r12, ror #8
    sxtb16  r12, r12
    smlad   r5, r12, r10, r5
    smlad   r5, lr, r11, r5
    ldr     r12, [r0, r3, lsl #1] @ row 2
    sxtb16  lr, r12, ror #8
    sxtb16  r12, r12
    smlad   r6, r12, r10, r6
    smlad   r6, lr, r11, r6
    ldr     r12, [r0, r8]       @ row 3
    sxtb16  lr, r12, ror #8
    sxtb16  r12, r12
    smlad   r7, r12, r10, r7
    smlad   r7, lr, r11, r7
    ldr     r12, [r0], #4       @ row 0, and on to the next four taps
    sxtb16  lr, r12, ror #8
    sxtb16  r12, r12
    smlad   r4, r12, r10, r4
    smlad   r4, lr, r11, r4
.endm
microcnn_dot4x1_s8:
    push    {r4-r11, lr}
    ldr     r9, [sp, #40]       @ offset pair
    add     r8, r3, r3, lsl #1  @ 3 · stride
    movs    r4, #0
    movs    r5, #0
    movs    r6, #0
    movs    r7, #0
    lsrs    r2, r2, #1          @ carry = an odd quad left over
    bcc     3f
    microcnn_dot4x1_quad        @ the odd quad first
3:
    lsrs    r2, r2, #1          @ passes of four quads; carry = a pair left over, Z = no pass
    bcc     4f
    microcnn_dot4x1_quad        @ then the pair (no flags set)
    microcnn_dot4x1_quad
4:
    beq     2f
1:
    microcnn_dot4x1_quad
    microcnn_dot4x1_quad
    microcnn_dot4x1_quad
    microcnn_dot4x1_quad
    subs    r2, r2, #1
    bne     1b
2:
    ldr     r0, [sp, #36]       @ out
    stm     r0, {r4-r7}
    pop     {r4-r11, pc}
    .size microcnn_dot4x1_s8, . - microcnn_dot4x1_s8
    .purgem microcnn_dot4x1_quad

    .syntax unified
    .thumb
@ One tap of both pixels and both channels: r0 = w0 (w1 is r3 = k bytes further), r1 = x0
@ (x1 is 512 bytes further); both pointers move on by one.
@ Four taps of both pixels and both channels with SXTB16/SMLAD (no flags set): r0 = w0, r3 = the
@ distance from w0 + 4 to w1, r1 = x0 (x1 is 512 bytes further); both pointers move on by four.
.macro microcnn_conv2x2_quad
    ldr     r8, [r1, #512]          @ x1 word
    ldr     r10, [r1], #4           @ x0 word
    sxtb16  r9, r8, ror #8          @ x1 bytes 1, 3
    sxtb16  r8, r8                  @ x1 bytes 0, 2
    sxtb16  r11, r10, ror #8        @ x0 bytes 1, 3
    sxtb16  r10, r10                @ x0 bytes 0, 2
    ldr     r12, [r0], #4           @ w0 word
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r4, lr, r10, r4
    smlad   r4, r12, r11, r4
    smlad   r5, lr, r8, r5
    smlad   r5, r12, r9, r5
    ldr     r12, [r0, r3]           @ w1 word
    sxtb16  lr, r12
    sxtb16  r12, r12, ror #8
    smlad   r6, lr, r10, r6
    smlad   r6, r12, r11, r6
    smlad   r7, lr, r8, r7
    smlad   r7, r12, r9, r7
.endm
.macro microcnn_conv2x2_tap
    ldrsb   r8, [r1, #512]          @ x1
    ldrsb   r10, [r1], #1           @ x0
    ldrsb   r12, [r0, r3]           @ w1
    ldrsb   lr, [r0], #1            @ w0
    mla     r4, lr, r10, r4
    mla     r5, lr, r8, r5
    mla     r6, r12, r10, r6
    mla     r7, r12, r8, r7
.endm
    .section .text.microcnn_conv2x2_s8,"ax",%progbits
    .global microcnn_conv2x2_s8
    .type microcnn_conv2x2_s8,%function
    .thumb_func
    .p2align 2
@ microcnn_conv2x2_s8(args): two output pixels × a block of output channels, dot products and
@ requantization in one loop (the register-blocked convolution's whole inner part).
@
@ r0 = args, a `Conv2x2Args` (src/kernels/simd/arm.rs), all fields 32 bits:
@    0 w      filter row of the block's first channel; rows are `k` bytes apart
@    4 x      column of pixel 0; pixel 1's column is 512 bytes further
@    8 k      taps per row, ≥ 1
@   12 table  one 28-byte ChannelRequant per channel (requant.s), each admitted by short_ok
@   16 pairs  channel pairs, ≥ 1
@   20 out0   pixel 0's output for the block's first channel (channels are consecutive bytes)
@   24 out1   pixel 1's
@   28 lo     activation minimum (with MICROCNN_DSP in all four bytes)
@   32 hi     activation maximum (likewise)
@ For each pair c, c+1: a_pc = add_c + Σ w_c·x_p over k taps (raw int8 products; the
@ accumulators start at the table's `add`), then out_p[c] = clamp(requant(a_pc) + zp, lo, hi)
@ (requant.s: TFLM's MultiplyByQuantizedMultiplier, the zero point folded into `round`).
@ With MICROCNN_DSP the taps go four at a time through SXTB16/SMLAD and the four results are
@ saturated to int8 (SSAT) and clamped as packed bytes (SSUB8/SEL); otherwise the taps go one at
@ a time through LDRSB/MLA (Armv7-M) and each result is clamped on its own. A remainder of
@ k mod 4 taps is always done one at a time. Each pixel's two bytes go out in one STRH.
@
@ Stack frame (after the 9 saved registers): [sp] w, [sp+4] table, [sp+8] out0, [sp+12] out1,
@ [sp+16] pairs left, [sp+20] lo, [sp+24] hi, [sp+28] x, [sp+32] k; 44 bytes with padding, so
@ the stack stays 8-byte aligned.
microcnn_conv2x2_s8:
    push    {r4-r11, lr}
    sub     sp, sp, #44
    ldm     r0, {r1-r7}             @ w x k table pairs out0 out1
    str     r1, [sp, #0]
    str     r4, [sp, #4]
    strd    r6, r7, [sp, #8]
    str     r5, [sp, #16]
    strd    r2, r3, [sp, #28]
    ldrd    r1, r2, [r0, #28]
    strd    r1, r2, [sp, #20]       @ lo, hi
.Lpair:
    ldr     r0, [sp, #0]            @ w0
    ldrd    r1, r3, [sp, #28]       @ x0, k
    ldr     r2, [sp, #4]            @ table
    ldr     r4, [r2, #20]           @ a00 = a01 = add of channel c
    ldr     r6, [r2, #48]           @ a10 = a11 = add of channel c + 1
    mov     r5, r4
    mov     r7, r6
.ifdef MICROCNN_DSP
    lsrs    r2, r3, #2              @ quads
    beq     .Ltail
    subs    r3, r3, #4              @ row 1 relative to the post-incremented row-0 pointer
    lsrs    r2, r2, #1              @ pairs of quads; C = an odd one, Z = no pair
    bcc     1f
    microcnn_conv2x2_quad           @ (sets no flags)
    beq     3f
1:
    microcnn_conv2x2_quad
    microcnn_conv2x2_quad
    subs    r2, r2, #1
    bne     1b
3:
    adds    r3, r3, #4              @ k again
.Ltail:
    ands    r2, r3, #3              @ taps left
    beq     .Lrequant
.else
    lsrs    r2, r3, #2              @ quads, four taps each one at a time (unrolled)
    beq     .Ltail
1:
    microcnn_conv2x2_tap
    microcnn_conv2x2_tap
    microcnn_conv2x2_tap
    microcnn_conv2x2_tap
    subs    r2, r2, #1
    bne     1b
.Ltail:
    ands    r2, r3, #3              @ taps left
    beq     .Lrequant
.endif
2:
    microcnn_conv2x2_tap
    subs    r2, r2, #1
    bne     2b
.Lrequant:
    add     r0, r0, r3              @ r0 was w0 + k; the next pair starts at w0 + 2k
    str     r0, [sp, #0]
    @ Channel c: pixels 0 and 1 (r4, r5); then channel c + 1 (r6, r7).
    ldr     r1, [sp, #4]
    microcnn_load_channel r1
    microcnn_requant_q r4, r11, r12
    microcnn_requant_q r5, r11, r12
    adds    r1, r1, #28
    microcnn_load_channel r1
    microcnn_requant_q r6, r11, r12
    microcnn_requant_q r7, r11, r12
    adds    r1, r1, #28
    str     r1, [sp, #4]
    ldrd    r2, r3, [sp, #20]       @ lo, hi
.ifdef MICROCNN_DSP
    ssat    r4, #8, r4
    ssat    r5, #8, r5
    ssat    r6, #8, r6
    ssat    r7, #8, r7
    microcnn_pack_clamp4 r4, r6, r5, r7, r2, r3, r1  @ pixel 0: channels c, c + 1; pixel 1
.else
    .irp a, r4, r5, r6, r7
    microcnn_clamp \a, r2, r3
    .endr
    microcnn_pack4 r4, r6, r5, r7
.endif
    ldrd    r0, r1, [sp, #8]        @ out0, out1
    strh    r4, [r0], #2            @ (unaligned halfword stores are allowed on these cores)
    lsrs    r4, r4, #16
    strh    r4, [r1], #2
    strd    r0, r1, [sp, #8]
    ldr     r1, [sp, #16]
    subs    r1, r1, #1
    str     r1, [sp, #16]
    bne     .Lpair
    add     sp, sp, #44
    pop     {r4-r11, pc}

    .size microcnn_conv2x2_s8, . - microcnn_conv2x2_s8
    .purgem microcnn_conv2x2_tap
    .purgem microcnn_conv2x2_quad

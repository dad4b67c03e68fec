    .section .text.microcnn_depthwise4_s8,"ax",%progbits
    .global microcnn_depthwise4_s8
    .type microcnn_depthwise4_s8,%function
    .thumb_func
    .p2align 2
@ microcnn_depthwise4_s8(args): one output pixel of a depthwise convolution (depth multiplier 1)
@ for a block of channels, four at a time: accumulate every in-bounds tap, requantize, store.
@
@ r0 = args, a `Depthwise4Args` (src/kernels/simd/arm.rs), all fields 32 bits:
@    0 x        input at the first in-bounds tap, block's first channel
@    4 w        filter at the same tap, block's first channel
@    8 rows     in-bounds kernel rows, ≥ 1
@   12 cols     in-bounds kernel columns, ≥ 1
@   16 xskip    bytes from after a row's last tap to the next row's first (input)
@   20 xcol     bytes between taps in a row (input: dilation · channels)
@   24 wskip    as xskip, filter
@   28 wcol     as xcol, filter (channels)
@   32 quads    channel quads, ≥ 1
@   36 table    ChannelRequant entries (requant.s), one per channel
@   40 out      output of the block's first channel
@   44 zp       output zero point
@   48 lo       activation minimum − zp
@   52 hi       activation maximum − zp
@   56 offset   −input zero point: in both halfwords with MICROCNN_DSP, else as a word
@ acc_c = Σ_taps w_c·(x_c + offset); out[c] = the requantized acc_c.
@ With MICROCNN_DSP a tap is one word of four inputs and one of four weights, unpacked by
@ SXTAB16/SXTB16 and accumulated by SMLABB/SMLATT; otherwise LDRSB and MLA per channel.
@
@ Stack frame (after the 9 saved registers): [sp] x, [sp+4] w (both advance four channels per
@ quad), [sp+8] table, [sp+12] out, [sp+16] quads left, [sp+20] args, [sp+24] rows left.
microcnn_depthwise4_s8:
    push    {r4-r11, lr}
    sub     sp, sp, #28
    str     r0, [sp, #20]
    ldr     r1, [r0, #0]
    str     r1, [sp, #0]
    ldr     r1, [r0, #4]
    str     r1, [sp, #4]
    ldr     r1, [r0, #36]
    str     r1, [sp, #8]
    ldr     r1, [r0, #40]
    str     r1, [sp, #12]
    ldr     r1, [r0, #32]
    str     r1, [sp, #16]
.Ldw_quad:
    ldr     lr, [sp, #20]           @ args
    ldr     r0, [sp, #0]            @ x
    ldr     r1, [sp, #4]            @ w
    ldr     r2, [lr, #8]            @ rows
    str     r2, [sp, #24]
    movs    r4, #0
    movs    r5, #0
    movs    r6, #0
    movs    r7, #0
    ldr     r3, [lr, #20]           @ xcol
    ldr     r12, [lr, #56]          @ offset
    ldr     lr, [lr, #28]           @ wcol
.Ldw_row:
    ldr     r2, [sp, #20]
    ldr     r2, [r2, #12]           @ cols
.Ldw_tap:
.ifdef MICROCNN_DSP
    ldr     r8, [r0]                @ four inputs
    ldr     r10, [r1]               @ four weights
    add     r0, r0, r3
    add     r1, r1, lr
    sxtab16 r9, r12, r8             @ channels 0, 2, + offset
    sxtab16 r8, r12, r8, ror #8     @ channels 1, 3, + offset
    sxtb16  r11, r10                @ weights 0, 2
    sxtb16  r10, r10, ror #8        @ weights 1, 3
    smlabb  r4, r11, r9, r4
    smlatt  r6, r11, r9, r6
    smlabb  r5, r10, r8, r5
    smlatt  r7, r10, r8, r7
.else
    ldrsb   r8, [r0]
    ldrsb   r9, [r1]
    ldrsb   r10, [r0, #1]
    ldrsb   r11, [r1, #1]
    add     r8, r8, r12
    mla     r4, r8, r9, r4
    add     r10, r10, r12
    mla     r5, r10, r11, r5
    ldrsb   r8, [r0, #2]
    ldrsb   r9, [r1, #2]
    ldrsb   r10, [r0, #3]
    ldrsb   r11, [r1, #3]
    add     r8, r8, r12
    mla     r6, r8, r9, r6
    add     r10, r10, r12
    mla     r7, r10, r11, r7
    add     r0, r0, r3
    add     r1, r1, lr
.endif
    subs    r2, r2, #1
    bne     .Ldw_tap
    ldr     r2, [sp, #20]
    ldr     r8, [r2, #16]           @ xskip
    ldr     r9, [r2, #24]           @ wskip
    add     r0, r0, r8
    add     r1, r1, r9
    ldr     r8, [sp, #24]
    subs    r8, r8, #1
    str     r8, [sp, #24]
    bne     .Ldw_row
    ldr     r1, [sp, #20]
    ldr     r0, [r1, #44]           @ zp
    ldr     r11, [r1, #48]          @ lo
    ldr     r12, [r1, #52]          @ hi
    ldr     r1, [sp, #8]
    microcnn_load_channel
    str     r1, [sp, #8]
    microcnn_requant r4
    ldr     r1, [sp, #8]
    microcnn_load_channel
    str     r1, [sp, #8]
    microcnn_requant r5
    ldr     r1, [sp, #8]
    microcnn_load_channel
    str     r1, [sp, #8]
    microcnn_requant r6
    ldr     r1, [sp, #8]
    microcnn_load_channel
    str     r1, [sp, #8]
    microcnn_requant r7
    ldr     r1, [sp, #12]
    strb    r4, [r1]
    strb    r5, [r1, #1]
    strb    r6, [r1, #2]
    strb    r7, [r1, #3]
    adds    r1, r1, #4
    str     r1, [sp, #12]
    ldr     r1, [sp, #0]
    adds    r1, r1, #4
    str     r1, [sp, #0]
    ldr     r1, [sp, #4]
    adds    r1, r1, #4
    str     r1, [sp, #4]
    ldr     r1, [sp, #16]
    subs    r1, r1, #1
    str     r1, [sp, #16]
    bne     .Ldw_quad
    add     sp, sp, #28
    pop     {r4-r11, pc}
    .size microcnn_depthwise4_s8, . - microcnn_depthwise4_s8

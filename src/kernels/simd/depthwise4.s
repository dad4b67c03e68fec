    .section .text.microcnn_depthwise4_s8,"ax",%progbits
    .global microcnn_depthwise4_s8
    .type microcnn_depthwise4_s8,%function
    .thumb_func
    .p2align 2
@ microcnn_depthwise4_s8(args): a run of output pixels of a depthwise convolution (depth
@ multiplier 1) that share one window of in-bounds taps, for a block of channels four at a time:
@ accumulate every tap, requantize, clamp, store four bytes.
@
@ r0 = args, a `Depthwise4Args` (src/kernels/simd/arm.rs), all fields 32 bits:
@    0 x        input at the first pixel's first in-bounds tap, block's first channel
@    4 w        filter at the same tap, block's first channel
@    8 rows     in-bounds kernel rows, ≥ 1
@   12 span     bytes of one row of taps: in-bounds columns × step, ≥ 1
@   16 xrow     bytes between the input rows of two kernel rows (dilation · width · channels)
@   20 wrow     bytes between two kernel rows of the filter (kernel width · channels)
@   24 step     bytes between two taps of a row, in the input and in the filter (channels;
@               the input's column dilation is 1)
@   28 quads    channel quads per pixel, ≥ 1
@   32 table    ChannelRequant entries (requant.s), one per channel
@   36 out      output of the first pixel, block's first channel
@   40 lo       activation minimum (with MICROCNN_DSP in all four bytes)
@   44 hi       activation maximum (likewise)
@   48 offset   −input zero point: in both halfwords with MICROCNN_DSP, else as a word
@   52 pixels   pixels in the run, ≥ 1
@   56 xpixel   bytes between two pixels' inputs (stride · channels)
@   60 opixel   bytes between two pixels' outputs (channels)
@ acc_c = add_c + Σ_taps w_c·(x_c + offset); out[c] = clamp(requant(acc_c) + zp, lo, hi)
@ (requant.s, the zero point folded into the table's `round`; every entry admitted by short_ok).
@
@ A row of taps is walked by one negative index from −span up to 0 against pointers to the
@ row's end (input and filter), so the index's add is also the loop test. With MICROCNN_DSP a tap
@ is one word of four inputs and one of four weights, unpacked by SXTAB16/SXTB16 and
@ accumulated by SMLABB/SMLATT, and the four results are clamped as packed bytes (SSUB8/SEL);
@ otherwise SXTB and MLA per channel and a clamp per channel.
@
@ Stack frame (after the 9 saved registers), all words:
@   0 X, 4 W: this quad's input and filter row ends of its first row; 8 XEND: X after the last
@   row; 12 table; 16 out; 20 quads left; 24 xrow, 28 wrow; 32 −span; 36 zp; 40 lo, 44 hi;
@   48 args; 52 pixels left; 56 X0, 60 OUT0: this pixel's first-quad X and out; 64 W0;
@   68 offset; 72 step (36 unused).
@ The requantized accumulator \a (requant.s) of the channel at r11, which moves on to the next
@ entry; saturated to int8 on DSP cores.
.macro microcnn_dw_requant a
    microcnn_load_channel r11
    microcnn_requant_q \a, r1, r12
    adds    r11, r11, #28
.ifdef MICROCNN_DSP
    ssat    \a, #8, \a
.endif
.endm
microcnn_depthwise4_s8:
    push    {r4-r11, lr}
    sub     sp, sp, #76
    str     r0, [sp, #48]
    ldr     r1, [r0, #12]           @ span
    rsbs    r2, r1, #0
    str     r2, [sp, #32]
    ldr     r2, [r0, #0]
    add     r2, r2, r1
    str     r2, [sp, #56]           @ X0: the first pixel's first row end
    ldr     r2, [r0, #4]
    add     r2, r2, r1
    str     r2, [sp, #64]           @ W0
    ldr     r2, [r0, #36]
    str     r2, [sp, #60]           @ OUT0
    ldrd    r2, r3, [r0, #16]       @ xrow, wrow
    strd    r2, r3, [sp, #24]
    ldrd    r2, r3, [r0, #40]       @ lo, hi
    strd    r2, r3, [sp, #40]
    ldr     r2, [r0, #48]
    str     r2, [sp, #68]           @ offset
    ldr     r2, [r0, #24]
    str     r2, [sp, #72]           @ step
    ldr     r2, [r0, #52]
    str     r2, [sp, #52]           @ pixels
.Ldw_pixel:
    ldr     r0, [sp, #48]
    ldr     r1, [sp, #56]
    ldr     r2, [sp, #64]
    strd    r1, r2, [sp, #0]        @ X, W
    ldr     r3, [r0, #8]            @ rows
    ldr     r4, [sp, #24]
    mla     r3, r3, r4, r1
    str     r3, [sp, #8]            @ XEND = X + rows · xrow
    ldr     r3, [r0, #32]
    str     r3, [sp, #12]           @ table
    ldr     r3, [sp, #60]
    str     r3, [sp, #16]           @ out
    ldr     r3, [r0, #28]
    str     r3, [sp, #20]           @ quads
.Ldw_quad:
    ldr     r11, [sp, #12]
    ldr     r4, [r11, #20]          @ the accumulators start at the channels' `add`
    ldr     r5, [r11, #48]
    ldr     r6, [r11, #76]
    ldr     r7, [r11, #104]
    ldrd    r0, r1, [sp, #0]
    ldr     r2, [sp, #32]
    mov     r3, r2
    ldr     r12, [sp, #68]
    ldr     lr, [sp, #72]
.Ldw_tap:
    ldr     r8, [r0, r3]            @ four inputs
    ldr     r10, [r1, r3]           @ four weights
.ifdef MICROCNN_DSP
    sxtab16 r9, r12, r8             @ channels 0, 2, + offset
    sxtab16 r8, r12, r8, ror #8     @ channels 1, 3, + offset
    sxtb16  r11, r10                @ weights 0, 2
    sxtb16  r10, r10, ror #8        @ weights 1, 3
    smlabb  r4, r11, r9, r4
    smlatt  r6, r11, r9, r6
    smlabb  r5, r10, r8, r5
    smlatt  r7, r10, r8, r7
.else
    sxtb    r9, r8
    sxtb    r11, r10
    add     r9, r9, r12
    mla     r4, r9, r11, r4
    sxtb    r9, r8, ror #8
    sxtb    r11, r10, ror #8
    add     r9, r9, r12
    mla     r5, r9, r11, r5
    sxtb    r9, r8, ror #16
    sxtb    r11, r10, ror #16
    add     r9, r9, r12
    mla     r6, r9, r11, r6
    add     r9, r12, r8, asr #24
    asr     r11, r10, #24
    mla     r7, r9, r11, r7
.endif
    adds    r3, r3, lr
    bne     .Ldw_tap
    ldrd    r8, r9, [sp, #24]       @ xrow, wrow
    add     r0, r0, r8
    add     r1, r1, r9
    ldr     r8, [sp, #8]
    mov     r3, r2
    cmp     r0, r8
    bne     .Ldw_tap
    ldr     r11, [sp, #12]
    microcnn_dw_requant r4
    microcnn_dw_requant r5
    microcnn_dw_requant r6
    microcnn_dw_requant r7
    str     r11, [sp, #12]
    ldrd    r8, r9, [sp, #40]       @ lo, hi
.ifdef MICROCNN_DSP
    microcnn_pack_clamp4 r4, r5, r6, r7, r8, r9, r1
.else
    .irp a, r4, r5, r6, r7
    microcnn_clamp \a, r8, r9
    .endr
    microcnn_pack4 r4, r5, r6, r7
.endif
    ldr     r1, [sp, #16]
    str     r4, [r1], #4            @ four outputs (unaligned stores are allowed here)
    str     r1, [sp, #16]
    ldrd    r0, r1, [sp, #0]
    adds    r0, r0, #4
    adds    r1, r1, #4
    strd    r0, r1, [sp, #0]
    ldr     r0, [sp, #8]
    adds    r0, r0, #4
    str     r0, [sp, #8]
    ldr     r0, [sp, #20]
    subs    r0, r0, #1
    str     r0, [sp, #20]
    bne     .Ldw_quad
    ldr     r0, [sp, #48]
    ldr     r1, [sp, #56]
    ldr     r2, [r0, #56]
    add     r1, r1, r2
    str     r1, [sp, #56]           @ X0 += xpixel
    ldr     r1, [sp, #60]
    ldr     r2, [r0, #60]
    add     r1, r1, r2
    str     r1, [sp, #60]           @ OUT0 += opixel
    ldr     r1, [sp, #52]
    subs    r1, r1, #1
    str     r1, [sp, #52]
    bne     .Ldw_pixel
    add     sp, sp, #76
    pop     {r4-r11, pc}
    .size microcnn_depthwise4_s8, . - microcnn_depthwise4_s8

    .syntax unified
    .thumb
@ The requantization shared by the assembly kernels (conv2x2.s, depthwise4.s), bit-exact with
@ ChannelRequant::apply_short (src/quant.rs): TFLM's MultiplyByQuantizedMultiplier plus the
@ output zero point, for channels ChannelRequant::short_ok admitted (the wrappers in arm.rs
@ call the routines only then). With x = acc · 2^(left+1), which fits 32 bits,
@ SaturatingRoundingDoublingHighMul is the rounded high word of x·m (SMMLAR), which also adds
@ `round` = 2^(right−1) + zp·2^right; RoundingDivideByPOT is then one arithmetic shift after
@ subtracting x's sign bit (ties away from zero; `sign` is 32 when right is 0, so nothing is
@ subtracted). Five instructions on DSP cores, seven on the Cortex-M3 (SMULL, ADDS, ADC).
@ Channel: r2 lsl, r3 multiplier, r8 round, r9 sign, r10 right (microcnn_load_channel);
@ clobbers \t (and \u without the DSP extension).
.macro microcnn_requant_q a, t, u
    lsl     \a, \a, r2              @ x = acc · 2^(left+1)
.ifdef MICROCNN_DSP
    smmlar  \t, \a, r3, r8          @ SRDHM(acc · 2^left, m) + round
.else
    smull   \t, \u, \a, r3
    adds    \t, \t, #0x80000000
    adc     \t, \u, r8              @ SRDHM(acc · 2^left, m) + round
.endif
    lsr     \a, \a, r9              @ [x < 0] when right ≥ 1, else 0
    sub     \a, \t, \a
    asr     \a, \a, r10             @ RoundingDivideByPOT, + zp
.endm
@ \p = table entry (lsl, multiplier, round, sign, right, add, mask: 28 bytes) → r2, r3, r8, r9,
@ r10.
.macro microcnn_load_channel p
    ldm     \p, {r2, r3, r8, r9, r10}
.endm
@ Packs four int8 results into \w: its own low byte, then \b1, \b2, \b3 (BFI).
.macro microcnn_pack4 w, b1, b2, b3
    bfi     \w, \b1, #8, #8
    bfi     \w, \b2, #16, #8
    bfi     \w, \b3, #24, #8
.endm
@ microcnn_pack4, then each byte clamped to [lo, hi] given in all four bytes (DSP cores:
@ SSUB8 sets the GE flags SEL reads); clobbers \t.
.macro microcnn_pack_clamp4 w, b1, b2, b3, lo, hi, t
    microcnn_pack4 \w, \b1, \b2, \b3
    ssub8   \t, \w, \lo
    sel     \w, \w, \lo               @ max(·, lo) per byte
    ssub8   \t, \hi, \w
    sel     \w, \w, \hi               @ min(·, hi) per byte
.endm
@ clamp(\a, \lo, \hi) on a word (cores without SSUB8/SEL).
.macro microcnn_clamp a, lo, hi
    cmp     \a, \lo
    it      lt
    movlt   \a, \lo
    cmp     \a, \hi
    it      gt
    movgt   \a, \hi
.endm

    .syntax unified
    .thumb
@ The requantize step shared by the assembly kernels (conv2x2.s, depthwise4.s), bit-exact with
@ ChannelRequant::apply (src/quant.rs): TFLM's MultiplyByQuantizedMultiplier, zero point, clamp.
@ SaturatingRoundingDoublingHighMul then RoundingDivideByPOT of accumulator \a (already offset),
@ with r2 (left), r9 (multiplier), r10 (mask), r3 (right); clobbers r1 and lr.
.macro microcnn_requant_q a
    lsl     \a, \a, r2
    smull   r1, lr, \a, r9
    adds    r1, r1, #0x40000000
    adc     lr, lr, #0
    lsrs    r1, r1, #31
    orr     \a, r1, lr, lsl #1      @ y = SaturatingRoundingDoublingHighMul
    and     r1, \a, r10             @ remainder
    asr     lr, r10, #1
    add     lr, lr, \a, lsr #31     @ threshold
    asr     \a, \a, r3
    cmp     r1, lr
    it      gt
    addgt   \a, \a, #1              @ q = RoundingDivideByPOT
.endm
@ Requantizes accumulator \a with the channel in r8 (add), r9 (multiplier), r10 (mask),
@ r2 (left), r3 (right) and r0 (zp), r11 (lo), r12 (hi); clobbers r1 and lr.
.macro microcnn_requant a
    add     \a, \a, r8
    microcnn_requant_q \a
    cmp     \a, r11
    it      lt
    movlt   \a, r11
    cmp     \a, r12
    it      gt
    movgt   \a, r12
    add     \a, \a, r0              @ clamp(q, min − zp, max − zp) + zp = clamp(q + zp, min, max)
.endm
@ r1 = table entry (left, right, add, multiplier, mask: five words) → r2 left, r3 right, r8 add,
@ r9 multiplier, r10 mask; r1 moves to the next entry.
.macro microcnn_load_channel
    ldm     r1!, {r2, r3, r8, r9, r10}
.endm

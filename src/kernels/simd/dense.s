    .syntax unified
    .thumb
@ microcnn_dense_rows_s8(args): the dense layer for `rows` weight rows against one piece of the
@ input, and on the last piece their requantization. The piece's quads of taps are first
@ unpacked once into `pairs` — per quad the words (x0, x2) and (x1, x3), 16-bit lanes, with the
@ input offset −zp added (SXTAB16). Rows then go two at a time, eight taps per step: one LDM of
@ four words of pairs, and per row one LDRD of eight weights, four SXTB16 and four SMLAD —
@ 19 instructions per 16 MACs (the weight rows must be word-aligned for LDRD), four steps per
@ loop pass; a last odd row alone.
@
@ r0 = args, a `DenseArgs` (src/kernels/simd/dsp.rs), all fields 32 bits:
@    0 w       row 0 of the piece, word-aligned (row r is r·stride bytes further)
@    4 x       the piece's 4·quads input bytes (any alignment)
@    8 quads   ≥ 1
@   12 stride  bytes between rows, a multiple of 4, ≥ 4·quads
@   16 rows    ≥ 1
@   20 acc     rows sums, written: acc[r] = init[r] + Σ w_r·(x + offset) over the piece
@   24 init    rows words the sums start from (the biases on the first piece, then acc)
@   28 pairs   2·quads words, written here
@   32 offset  −input zero point in both halfwords
@   36 out     0: not the last piece; else out[r] = requantized acc[r] for every row
@   40 quant   `Requant` (multiplier, shift) of row 0, for out
@   44 step    bytes between two rows' `Requant`s (8, or 0 for one per tensor)
@   48 zp2     2·(output zero point) + 1
@   52 lo      activation minimum
@   56 hi      activation maximum
@ Returns in r0 how many outputs the short requantization could not do exactly (left unwritten:
@ the caller then requantizes every row from acc); see the requantization loop below.
@ Stack frame (after the 9 saved registers): [sp] rows left, [sp+4] acc cursor, [sp+8] init
@ cursor, [sp+12] pairs, [sp+16] quads, [sp+20] stride, [sp+24] args, [sp+28] outputs undone.
@ One word of four weights \w against the pairs \xe (taps 0, 2) and \xo (taps 1, 3); \w is
@ clobbered, r10 scratch.
.macro microcnn_dense_word acc, w, xe, xo
    sxtb16  r10, \w                 @ weights 0, 2
    smlad   \acc, r10, \xe, \acc
    sxtb16  \w, \w, ror #8          @ weights 1, 3
    smlad   \acc, \w, \xo, \acc
.endm
.macro microcnn_dense_row8 acc, row
    ldrd    r8, r9, [\row], #8      @ eight weights of the row
    microcnn_dense_word \acc, r8, r4, r5
    microcnn_dense_word \acc, r9, r6, r7
.endm
.macro microcnn_dense_row4 acc, row
    ldr     r8, [\row], #4          @ four weights of the row
    microcnn_dense_word \acc, r8, r4, r5
.endm
@ Two quads (eight taps) of rows A (r0, sum r11) and, with \two, B (r2, sum r12).
.macro microcnn_dense_oct two
    ldm     r1!, {r4-r7}            @ (x0, x2), (x1, x3), (x4, x6), (x5, x7)
    microcnn_dense_row8 r11, r0
    .if \two
    microcnn_dense_row8 r12, r2
    .endif
.endm
@ A group of one or two rows: the sums start from init, an odd quad first, then eight taps per
@ step — the steps beyond a multiple of four one at a time (in lr), then four per pass; then
@ the sums go to acc.
.macro microcnn_dense_group two
    ldr     lr, [sp, #8]
    .if \two
    ldrd    r11, r12, [lr], #8
    .else
    ldr     r11, [lr], #4
    .endif
    str     lr, [sp, #8]
    ldr     r1, [sp, #12]           @ pairs
    ldr     r3, [sp, #16]           @ quads
    lsrs    r3, r3, #1              @ C = an odd quad; r3 = steps of eight
    bcc     1f
    ldrd    r4, r5, [r1], #8
    microcnn_dense_row4 r11, r0
    .if \two
    microcnn_dense_row4 r12, r2
    .endif
1:
    ands    lr, r3, #3              @ steps beyond a multiple of four
    beq     3f
2:
    microcnn_dense_oct \two
    subs    lr, lr, #1
    bne     2b
3:
    lsrs    r3, r3, #2              @ passes of four steps
    beq     5f
4:
    microcnn_dense_oct \two
    microcnn_dense_oct \two
    microcnn_dense_oct \two
    microcnn_dense_oct \two
    subs    r3, r3, #1
    bne     4b
5:
    ldr     lr, [sp, #4]
    .if \two
    strd    r11, r12, [lr], #8
    .else
    str     r11, [lr], #4
    .endif
    str     lr, [sp, #4]
.endm
    .section .text.microcnn_dense_rows_s8,"ax",%progbits
    .global microcnn_dense_rows_s8
    .type microcnn_dense_rows_s8,%function
    .thumb_func
    .p2align 2
microcnn_dense_rows_s8:
    push    {r4-r11, lr}
    sub     sp, sp, #36
    str     r0, [sp, #24]
    mov     r12, r0
    ldr     r4, [r12, #16]
    str     r4, [sp, #0]            @ rows
    ldrd    r4, r5, [r12, #20]      @ acc, init
    strd    r4, r5, [sp, #4]
    ldrd    r4, r5, [r12, #28]      @ pairs, offset
    ldrd    r0, r1, [r12, #0]       @ w, x
    ldrd    r2, r3, [r12, #8]       @ quads, stride
    strd    r4, r2, [sp, #12]       @ pairs, quads
    str     r3, [sp, #20]           @ stride
    ands    r6, r2, #1              @ unpack an odd quad, an odd pair, then four quads a pass
    beq     .Ldense_unpack
    ldr     r9, [r1], #4
    sxtab16 r10, r5, r9             @ x0 + offset, x2 + offset
    sxtab16 r11, r5, r9, ror #8     @ x1 + offset, x3 + offset
    strd    r10, r11, [r4], #8
.Ldense_unpack:
    tst     r2, #2
    beq     .Ldense_unpack4
    ldr     r7, [r1], #4            @ (the input may be unaligned: no LDRD or LDM)
    ldr     r8, [r1], #4
    sxtab16 r9, r5, r7
    sxtab16 r10, r5, r7, ror #8
    sxtab16 r11, r5, r8
    sxtab16 r12, r5, r8, ror #8
    stm     r4!, {r9-r12}
.Ldense_unpack4:
    lsrs    r6, r2, #2
    beq     .Ldense_rows
.Ldense_unpack4_loop:
    ldr     r2, [r1], #4
    ldr     r3, [r1], #4
    ldr     r7, [r1], #4
    ldr     r8, [r1], #4
    sxtab16 r9, r5, r2
    sxtab16 r10, r5, r2, ror #8
    sxtab16 r11, r5, r3
    sxtab16 r12, r5, r3, ror #8
    stm     r4!, {r9-r12}
    sxtab16 r9, r5, r7
    sxtab16 r10, r5, r7, ror #8
    sxtab16 r11, r5, r8
    sxtab16 r12, r5, r8, ror #8
    stm     r4!, {r9-r12}
    subs    r6, r6, #1
    bne     .Ldense_unpack4_loop
.Ldense_rows:
    ldr     r4, [sp, #0]
    subs    r4, r4, #2
    blt     .Ldense_one
    str     r4, [sp, #0]
    ldr     r3, [sp, #20]
    add     r2, r0, r3              @ row B
    microcnn_dense_group 1
    mov     r0, r2                  @ row B's end …
    ldrd    r2, r3, [sp, #16]       @ quads, stride
    sub     r3, r3, r2, lsl #2
    add     r0, r0, r3              @ … to the next pair's row A
    b       .Ldense_rows
.Ldense_one:
    adds    r4, r4, #2
    beq     .Ldense_requant_start
    microcnn_dense_group 0
@ Requantization (last piece only), bit-exact with requantize_short (src/quant.rs): with
@ x = acc·2^(left+1) fitting 32 bits (tested on the value: shifting back gives acc) and
@ right ≤ 22, SMMLAR gives SaturatingRoundingDoublingHighMul plus round = zp·2^right +
@ 2^(right−1), and RoundingDivideByPOT is one shift after subtracting x's sign bit (with no
@ right shift, SMMLAR adds just zp); other outputs are counted and left to the caller. 27
@ instructions per output, 22 when the activation clamps to all of int8 (one SSAT).
@ Registers: r1 acc, r2 quant, r3 step, r5 zp2, r6 lo, r7 hi, r8 rows left, r12 out; r0, r4,
@ r9–r11 and lr scratch.
.macro microcnn_dense_requant full
1:
    ldr     r9, [r1], #4            @ acc (the bias included)
    ldrd    r10, r11, [r2]          @ multiplier, shift
    add     r2, r2, r3
    bic     lr, r11, r11, asr #31   @ left
    add     lr, lr, #1
    lsl     r0, r9, lr              @ x = acc · 2^(left+1)
    asr     lr, r0, lr
    cmp     lr, r9
    bne     4f
    rsbs    r11, r11, #0            @ right = −shift
    ble     2f
    cmp     r11, #22
    bhi     4f
    lsl     lr, r5, r11
    asr     lr, lr, #1              @ round = zp·2^right + 2^(right−1)
    smmlar  r9, r0, r10, lr         @ SRDHM(acc · 2^left, m) + round
    add     r9, r9, r0, asr #31     @ − [x < 0]
    asr     r9, r9, r11             @ RoundingDivideByPOT, + zp
    b       3f
2:
    asr     lr, r5, #1              @ zp (no right shift)
    smmlar  r9, r0, r10, lr
3:
    .if \full
    ssat    r9, #8, r9
    .else
    cmp     r9, r6
    it      lt
    movlt   r9, r6
    cmp     r9, r7
    it      gt
    movgt   r9, r7
    .endif
    strb    r9, [r12], #1
    subs    r8, r8, #1
    bne     1b
    b       .Ldense_done
4:
    ldr     r0, [sp, #28]           @ not exact by the short route: left to the caller
    add     r0, r0, #1
    str     r0, [sp, #28]
    add     r12, r12, #1
    subs    r8, r8, #1
    bne     1b
    b       .Ldense_done
.endm
.Ldense_requant_start:
    mov     r0, #0
    str     r0, [sp, #28]
    ldr     r0, [sp, #24]
    ldr     r12, [r0, #36]          @ out
    cmp     r12, #0
    beq     .Ldense_done
    ldr     r1, [r0, #20]           @ acc
    ldrd    r2, r3, [r0, #40]       @ quant, step
    ldr     r5, [r0, #48]           @ zp2
    ldrd    r6, r7, [r0, #52]       @ lo, hi
    ldr     r8, [r0, #16]           @ rows
    cmn     r6, #128
    bne     .Ldense_requant_clamp
    cmp     r7, #127
    bne     .Ldense_requant_clamp
    microcnn_dense_requant 1
.Ldense_requant_clamp:
    microcnn_dense_requant 0
.Ldense_done:
    ldr     r0, [sp, #28]
    add     sp, sp, #36
    pop     {r4-r11, pc}
    .size microcnn_dense_rows_s8, . - microcnn_dense_rows_s8
    .purgem microcnn_dense_word
    .purgem microcnn_dense_row8
    .purgem microcnn_dense_row4
    .purgem microcnn_dense_oct
    .purgem microcnn_dense_group
    .purgem microcnn_dense_requant

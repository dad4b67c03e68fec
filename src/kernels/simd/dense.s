    .syntax unified
    .thumb
@ microcnn_dense_rows_s8(args): the dense layer for `rows` weight rows against one piece of the
@ input, and on the last piece their requantization. The piece's quads of taps are first
@ unpacked once into `pairs` — per quad the words (x0, x2) and (x1, x3), 16-bit lanes, with the
@ input offset −zp added (SXTAB16) — so each quad then costs one LDRD for every group of rows
@ instead of a load and two SXTAB16 per group. Rows go five at a time (per quad: LDRD, then for
@ each row LDR, SXTB16 ×2, SMLAD ×2: 26 instructions per 20 MACs), then four, two and one.
@
@ r0 = args, a `DenseArgs` (src/kernels/simd/dsp.rs), all fields 32 bits:
@    0 w       row 0 of the piece (row r is r·stride bytes further)
@    4 x       the piece's 4·quads input bytes
@    8 quads   ≥ 1
@   12 stride  bytes between rows, ≥ 4·quads
@   16 rows    ≥ 1
@   20 acc     rows sums: acc[r] (+)= Σ w_r·(x + offset) over the piece
@   24 pairs   2·quads words, written here
@   28 offset  −input zero point in both halfwords
@   32 first   nonzero: the sums start at 0 (acc is only written)
@   36 out     0: not the last piece; else out[r] = requantized acc[r] for every row
@   40 quant   `Requant` (multiplier, shift) of row 0, for out
@   44 step    bytes between two rows' `Requant`s (8, or 0 for one per tensor)
@   48 bias    rows biases (zeros for a layer without)
@   52 zp2     2·(output zero point) + 1
@   56 lo      activation minimum
@   60 hi      activation maximum
@ Returns in r0 how many outputs the short requantization could not do exactly (left unwritten:
@ the caller then requantizes every row from acc); see the requantization loop below.
@ Stack frame (after the 9 saved registers): [sp] rows left, [sp+4] acc cursor, [sp+8] pairs,
@ [sp+12] quads, [sp+16] first, [sp+20] stride − 4·quads (from a row's end to the next row),
@ [sp+24] args, [sp+28] outputs left undone.
.macro microcnn_dense_row acc, addr:vararg
    ldr     r12, \addr
    sxtb16  r11, r12                @ weights 0, 2
    sxtb16  r12, r12, ror #8        @ weights 1, 3
    smlad   \acc, r11, r9, \acc
    smlad   \acc, r12, r10, \acc
.endm
.macro microcnn_dense_quad5
    ldrd    r9, r10, [r1], #8       @ (x0, x2), (x1, x3)
    microcnn_dense_row r5, [r0, r3]
    microcnn_dense_row r6, [r0, r3, lsl #1]
    microcnn_dense_row r7, [r0, r8]
    microcnn_dense_row lr, [r0, r3, lsl #2]
    microcnn_dense_row r4, [r0], #4
.endm
.macro microcnn_dense_quad4
    ldrd    r9, r10, [r1], #8
    microcnn_dense_row r5, [r0, r3]
    microcnn_dense_row r6, [r0, r3, lsl #1]
    microcnn_dense_row r7, [r0, r8]
    microcnn_dense_row r4, [r0], #4
.endm
.macro microcnn_dense_quad2
    ldrd    r9, r10, [r1], #8
    microcnn_dense_row r5, [r0, r3]
    microcnn_dense_row r4, [r0], #4
.endm
.macro microcnn_dense_quad1
    ldrd    r9, r10, [r1], #8
    microcnn_dense_row r4, [r0], #4
.endm
@ One group of rows: the sums in \regs start at 0 (first piece) or at acc (LDM), then the loop
@ over the quads, two per pass (an odd one first), then the sums are stored (STM) and acc and
@ r0 move on to the next group (\rows rows further). \label names its local labels.
.macro microcnn_dense_group body, rows, regs:vararg
    ldrd    r1, r2, [sp, #8]        @ pairs, quads
    ldr     r12, [sp, #16]
    cmp     r12, #0
    ldr     r12, [sp, #4]
    bne     1f
    .if \rows == 1
    ldr     \regs, [r12]             @ (LDM and STM need two registers or more)
    .else
    ldm     r12, {\regs}
    .endif
    b       2f
1:
    .irp reg, \regs
    mov     \reg, #0
    .endr
2:
    lsrs    r2, r2, #1              @ C = an odd quad, Z = no pair
    bcc     3f
    \body
    beq     4f
3:
    \body
    \body
    subs    r2, r2, #1
    bne     3b
4:
    ldr     r12, [sp, #4]
    .if \rows == 1
    str     \regs, [r12], #4
    .else
    stm     r12!, {\regs}
    .endif
    str     r12, [sp, #4]
    ldr     r12, [sp, #20]
    add     r0, r0, r12             @ row 0's end → row 1
    .if \rows > 1
    .if \rows == 5
    add     r0, r0, r3, lsl #2      @ → row 5
    .elseif \rows == 4
    add     r0, r0, r8              @ → row 4
    .else
    add     r0, r0, r3              @ → row 2
    .endif
    .endif
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
    ldrd    r4, r5, [r12, #16]      @ rows, acc
    strd    r4, r5, [sp, #0]
    ldrd    r4, r5, [r12, #24]      @ pairs, offset
    ldrd    r0, r1, [r12, #0]       @ w, x
    ldrd    r2, r3, [r12, #8]       @ quads, stride
    strd    r4, r2, [sp, #8]        @ pairs, quads
    ldr     r6, [r12, #32]
    str     r6, [sp, #16]           @ first
    sub     r6, r3, r2, lsl #2
    str     r6, [sp, #20]           @ stride − 4·quads
    lsrs    r6, r2, #1              @ unpack two quads per pass (an odd one first)
    bcc     .Ldense_unpack
    ldr     r9, [r1], #4
    sxtab16 r10, r5, r9             @ x0 + offset, x2 + offset
    sxtab16 r11, r5, r9, ror #8     @ x1 + offset, x3 + offset
    strd    r10, r11, [r4], #8
    beq     .Ldense_unpacked
.Ldense_unpack:
    ldr     r7, [r1], #4            @ (the input may be unaligned: no LDRD)
    ldr     r8, [r1], #4
    sxtab16 r9, r5, r7
    sxtab16 r10, r5, r7, ror #8
    sxtab16 r11, r5, r8
    sxtab16 r12, r5, r8, ror #8
    stm     r4!, {r9-r12}
    subs    r6, r6, #1
    bne     .Ldense_unpack
.Ldense_unpacked:
    add     r8, r3, r3, lsl #1      @ 3 · stride
.Ldense_five:
    ldr     r4, [sp, #0]
    subs    r4, r4, #5
    blt     .Ldense_rest
    str     r4, [sp, #0]
    microcnn_dense_group microcnn_dense_quad5, 5, r4, r5, r6, r7, lr
    b       .Ldense_five
.Ldense_rest:
    adds    r4, r4, #5              @ rows left, 0–4
    str     r4, [sp, #0]
    cmp     r4, #4
    bne     .Ldense_two
    microcnn_dense_group microcnn_dense_quad4, 4, r4, r5, r6, r7
    b       .Ldense_end
.Ldense_two:
    cmp     r4, #2
    blt     .Ldense_one
    microcnn_dense_group microcnn_dense_quad2, 2, r4, r5
    ldr     r4, [sp, #0]
    cmp     r4, #3
    bne     .Ldense_end
.Ldense_one:
    cmp     r4, #0
    beq     .Ldense_end
    microcnn_dense_group microcnn_dense_quad1, 1, r4
@ Requantization (last piece only), bit-exact with requantize_short (src/quant.rs): with
@ x = acc·2^(left+1) fitting 32 bits (tested on the value: shifting back gives acc) and
@ right ≤ 22, SMMLAR gives SaturatingRoundingDoublingHighMul plus round = zp·2^right +
@ 2^(right−1), and RoundingDivideByPOT is one shift after subtracting x's sign bit; other
@ outputs are counted and left to the caller. 31 instructions per output.
@ Registers: r1 acc, r2 quant, r3 step, r4 bias, r5 zp2, r6 lo, r7 hi, r8 rows left, r12 out;
@ r0, r9–r11 and lr scratch.
.Ldense_end:
    mov     r0, #0
    str     r0, [sp, #28]
    ldr     r0, [sp, #24]
    ldr     r12, [r0, #36]          @ out
    cmp     r12, #0
    beq     .Ldense_done
    ldr     r1, [r0, #20]           @ acc
    ldrd    r2, r3, [r0, #40]       @ quant, step
    ldrd    r4, r5, [r0, #48]       @ bias, zp2
    ldrd    r6, r7, [r0, #56]       @ lo, hi
    ldr     r8, [r0, #16]           @ rows
.Ldense_requant:
    ldr     r9, [r1], #4
    ldr     r0, [r4], #4
    add     r9, r9, r0              @ acc + bias (wrapping, as TFLM's)
    ldrd    r10, r11, [r2]          @ multiplier, shift
    add     r2, r2, r3
    bic     lr, r11, r11, asr #31   @ left
    add     lr, lr, #1
    rsb     r11, r11, #0
    bic     r11, r11, r11, asr #31  @ right
    lsl     r0, r9, lr              @ x = acc · 2^(left+1)
    asr     lr, r0, lr
    cmp     lr, r9
    bne     .Ldense_long
    cmp     r11, #22
    bhi     .Ldense_long
    lsl     lr, r5, r11
    asr     lr, lr, #1              @ round = zp·2^right + 2^(right−1) (zp when right is 0)
    smmlar  r9, r0, r10, lr         @ SRDHM(acc · 2^left, m) + round
    cmp     r11, #0
    it      ne
    addne   r9, r9, r0, asr #31     @ − [x < 0] when right ≥ 1
    asr     r9, r9, r11             @ RoundingDivideByPOT, + zp
    cmp     r9, r6
    it      lt
    movlt   r9, r6
    cmp     r9, r7
    it      gt
    movgt   r9, r7
    strb    r9, [r12], #1
    subs    r8, r8, #1
    bne     .Ldense_requant
    b       .Ldense_done
.Ldense_long:
    ldr     r0, [sp, #28]
    add     r0, r0, #1
    str     r0, [sp, #28]
    add     r12, r12, #1
    subs    r8, r8, #1
    bne     .Ldense_requant
.Ldense_done:
    ldr     r0, [sp, #28]
    add     sp, sp, #36
    pop     {r4-r11, pc}
    .size microcnn_dense_rows_s8, . - microcnn_dense_rows_s8
    .purgem microcnn_dense_row
    .purgem microcnn_dense_quad5
    .purgem microcnn_dense_quad4
    .purgem microcnn_dense_quad2
    .purgem microcnn_dense_quad1
    .purgem microcnn_dense_group

@ Four rows against one column for Armv6-M (Cortex-M0/M0+/M1): Thumb-1 has no multiply-
@ accumulate and only eight low registers, so the four sums live in r8–r11 (ADD reaches the
@ high registers) and every row and the column keep their own base register, all indexed by
@ one count that runs down, because LDRSB has only the register-offset form.
@
@ microcnn_dot4x1_v6m_s8(w = r0, x = r1, taps = r2 ≥ 1, stride = r3, [sp] = out, [sp + 4] = offset)
@   out[r] = Σ_{t < taps} w[r·stride + t]·(x[t] + offset), r = 0..=3 (offset is −zp as a word).
@ microcnn_dot4x1_raw_v6m_s8: the same without the offset (raw products, for kernels that fold
@   the zero-point term into the bias).
@ Per tap: 4 + 3 per row (load, MULS, ADD), the loop unrolled over four taps: 3.6 instructions
@ per MAC with the offset, 3.3 without (plus a short loop for the first taps % 4).
@ Registers: r0 x value, r1 weight, r2 column − 1, r3–r6 rows − 1, r7 taps left (the index:
@ [base − 1 + i] is element i − 1), r8–r11 the sums, r12 the offset.
.macro microcnn_v6m_tap offset
    ldrsb   r0, [r2, r7]
    .if \offset
    add     r0, r12
    .endif
    ldrsb   r1, [r3, r7]
    muls    r1, r0, r1
    add     r8, r1
    ldrsb   r1, [r4, r7]
    muls    r1, r0, r1
    add     r9, r1
    ldrsb   r1, [r5, r7]
    muls    r1, r0, r1
    add     r10, r1
    ldrsb   r1, [r6, r7]
    muls    r1, r0, r1
    add     r11, r1
    subs    r7, r7, #1
.endm

.macro microcnn_v6m_dot4x1 name, offset
    .section .text.\name,"ax",%progbits
    .global \name
    .type \name,%function
    .thumb_func
    .p2align 2
\name:
    push    {r4-r7, lr}
    mov     r4, r8
    mov     r5, r9
    mov     r6, r10
    mov     r7, r11
    push    {r4-r7}
    @ [sp + 36] = out, [sp + 40] = offset
    mov     r7, r2
    subs    r2, r1, #1
    subs    r0, r0, #1
    adds    r4, r0, r3
    adds    r5, r4, r3
    adds    r6, r5, r3
    mov     r3, r0
    .if \offset
    ldr     r0, [sp, #40]
    mov     r12, r0
    .endif
    movs    r0, #0
    mov     r8, r0
    mov     r9, r0
    mov     r10, r0
    mov     r11, r0
    @ The first taps % 4 one at a time, then four per pass.
    lsls    r0, r7, #30
    beq     2f
1:
    microcnn_v6m_tap \offset
    lsls    r0, r7, #30
    bne     1b
    cmp     r7, #0
    beq     3f
2:
    microcnn_v6m_tap \offset
    microcnn_v6m_tap \offset
    microcnn_v6m_tap \offset
    microcnn_v6m_tap \offset
    bne     2b
3:
    ldr     r0, [sp, #36]
    mov     r1, r8
    str     r1, [r0, #0]
    mov     r1, r9
    str     r1, [r0, #4]
    mov     r1, r10
    str     r1, [r0, #8]
    mov     r1, r11
    str     r1, [r0, #12]
    pop     {r4-r7}
    mov     r8, r4
    mov     r9, r5
    mov     r10, r6
    mov     r11, r7
    pop     {r4-r7, pc}
    .size \name, . - \name
.endm

microcnn_v6m_dot4x1 microcnn_dot4x1_v6m_s8, 1
microcnn_v6m_dot4x1 microcnn_dot4x1_raw_v6m_s8, 0
.purgem microcnn_v6m_dot4x1
.purgem microcnn_v6m_tap

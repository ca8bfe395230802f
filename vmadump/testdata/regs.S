/*
 * void spin_regs(const uint64_t *gin, const uint8_t *vin, uint64_t *gout,
 *                uint8_t *vout, long pid, long vec)
 *
 * vec: 0 = SSE only (xmm0-15), 1 = AVX (ymm0-15), 2 = AVX-512 as well.
 *
 * Loads known values into the general registers, xmm/ymm0-15 (and zmm16-31,
 * k1-k7 with AVX-512), the x87 stack and MXCSR, then spins on getpid()
 * until it no longer returns pid (the process was restored elsewhere), and
 * stores every register back for the C side to compare. syscall clobbers
 * only rax, rcx and r11, so everything else must survive the move.
 * Layout of gin/gout: rbx rbp r8 r9 r10 r12 r13 r14 r15 rdi rsi rdx.
 * vin/vout: 16 x 32 bytes of ymm, then 16 x 64 bytes of zmm16-31, then
 * 7 x 8 bytes of k1-k7, then (vout only) two 10-byte x87 values + mxcsr.
 */
/*
 * vload OP, REG, BASE, SIZE, FIRST, LAST: OP each of REG<FIRST>..REG<LAST>
 * from vin at BASE + (n-FIRST)*SIZE; vstore the same, to vout (in %rax).
 */
	.macro vload op, reg, base, size, first, last
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.if \n >= \first && \n <= \last
	\op (\base + (\n - \first) * \size)(%rsi), %\reg\n
	.endif
	.endr
	.endm
	.macro vstore op, reg, base, size, first, last
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.if \n >= \first && \n <= \last
	\op %\reg\n, (\base + (\n - \first) * \size)(%rax)
	.endif
	.endr
	.endm
/* gload/gstore: general registers from/to 8-byte slots from 0 (%rdi/%rax) */
	.macro gload regs:vararg
	.Lslot = 0
	.irp r, \regs
	mov .Lslot(%rdi), %\r
	.Lslot = .Lslot + 8
	.endr
	.endm
	.macro gstore regs:vararg
	.Lslot = 0
	.irp r, \regs
	mov %\r, .Lslot(%rax)
	.Lslot = .Lslot + 8
	.endr
	.endm
	.text
	.globl spin_regs
	.type spin_regs, @function
spin_regs:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	sub $56, %rsp
	mov %rdx, 0(%rsp)	/* gout */
	mov %rcx, 8(%rsp)	/* vout */
	mov %r8, 16(%rsp)	/* pid */
	mov %r9, 24(%rsp)	/* vec */
	movl $0x7f80, 32(%rsp)	/* MXCSR: round toward zero, all masked */
	ldmxcsr 32(%rsp)
	fninit
	fldpi
	fld1
	test %r9, %r9
	jnz 4f
	vload movdqu, xmm, 0, 32, 0, 15
	jmp 1f
4:
	vload vmovdqu, ymm, 0, 32, 0, 15
	cmp $2, %r9
	jne 1f
	vload vmovdqu64, zmm, 512, 64, 16, 31
	vload kmovq, k, 1536, 8, 1, 7
1:
	gload rbx, rbp, r8, r9, r10, r12, r13, r14, r15
	mov 80(%rdi), %rsi
	mov 88(%rdi), %rdx
	mov 72(%rdi), %rdi
2:
	mov $39, %eax		/* getpid */
	syscall
	cmp 16(%rsp), %rax
	je 2b
	mov 0(%rsp), %rax
	gstore rbx, rbp, r8, r9, r10, r12, r13, r14, r15, rdi, rsi, rdx
	mov 8(%rsp), %rax
	cmpq $0, 24(%rsp)
	jne 5f
	vstore movdqu, xmm, 0, 32, 0, 15
	jmp 3f
5:
	vstore vmovdqu, ymm, 0, 32, 0, 15
	cmpq $2, 24(%rsp)
	jne 3f
	vstore vmovdqu64, zmm, 512, 64, 16, 31
	vstore kmovq, k, 1536, 8, 1, 7
3:
	fstpt 1592(%rax)
	fstpt 1602(%rax)
	stmxcsr 1612(%rax)
	movl $0x1f80, 32(%rsp)
	ldmxcsr 32(%rsp)
	cmpq $0, 24(%rsp)
	je 6f
	vzeroupper
6:
	add $56, %rsp
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	ret
	.size spin_regs, .-spin_regs
	.section .note.GNU-stack,"",@progbits

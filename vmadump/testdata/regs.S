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
	movdqu 0(%rsi), %xmm0
	movdqu 32(%rsi), %xmm1
	movdqu 64(%rsi), %xmm2
	movdqu 96(%rsi), %xmm3
	movdqu 128(%rsi), %xmm4
	movdqu 160(%rsi), %xmm5
	movdqu 192(%rsi), %xmm6
	movdqu 224(%rsi), %xmm7
	movdqu 256(%rsi), %xmm8
	movdqu 288(%rsi), %xmm9
	movdqu 320(%rsi), %xmm10
	movdqu 352(%rsi), %xmm11
	movdqu 384(%rsi), %xmm12
	movdqu 416(%rsi), %xmm13
	movdqu 448(%rsi), %xmm14
	movdqu 480(%rsi), %xmm15
	jmp 1f
4:
	vmovdqu 0(%rsi), %ymm0
	vmovdqu 32(%rsi), %ymm1
	vmovdqu 64(%rsi), %ymm2
	vmovdqu 96(%rsi), %ymm3
	vmovdqu 128(%rsi), %ymm4
	vmovdqu 160(%rsi), %ymm5
	vmovdqu 192(%rsi), %ymm6
	vmovdqu 224(%rsi), %ymm7
	vmovdqu 256(%rsi), %ymm8
	vmovdqu 288(%rsi), %ymm9
	vmovdqu 320(%rsi), %ymm10
	vmovdqu 352(%rsi), %ymm11
	vmovdqu 384(%rsi), %ymm12
	vmovdqu 416(%rsi), %ymm13
	vmovdqu 448(%rsi), %ymm14
	vmovdqu 480(%rsi), %ymm15
	cmp $2, %r9
	jne 1f
	vmovdqu64 512(%rsi), %zmm16
	vmovdqu64 576(%rsi), %zmm17
	vmovdqu64 640(%rsi), %zmm18
	vmovdqu64 704(%rsi), %zmm19
	vmovdqu64 768(%rsi), %zmm20
	vmovdqu64 832(%rsi), %zmm21
	vmovdqu64 896(%rsi), %zmm22
	vmovdqu64 960(%rsi), %zmm23
	vmovdqu64 1024(%rsi), %zmm24
	vmovdqu64 1088(%rsi), %zmm25
	vmovdqu64 1152(%rsi), %zmm26
	vmovdqu64 1216(%rsi), %zmm27
	vmovdqu64 1280(%rsi), %zmm28
	vmovdqu64 1344(%rsi), %zmm29
	vmovdqu64 1408(%rsi), %zmm30
	vmovdqu64 1472(%rsi), %zmm31
	kmovq 1536(%rsi), %k1
	kmovq 1544(%rsi), %k2
	kmovq 1552(%rsi), %k3
	kmovq 1560(%rsi), %k4
	kmovq 1568(%rsi), %k5
	kmovq 1576(%rsi), %k6
	kmovq 1584(%rsi), %k7
1:
	mov 0(%rdi), %rbx
	mov 8(%rdi), %rbp
	mov 16(%rdi), %r8
	mov 24(%rdi), %r9
	mov 32(%rdi), %r10
	mov 40(%rdi), %r12
	mov 48(%rdi), %r13
	mov 56(%rdi), %r14
	mov 64(%rdi), %r15
	mov 80(%rdi), %rsi
	mov 88(%rdi), %rdx
	mov 72(%rdi), %rdi
2:
	mov $39, %eax		/* getpid */
	syscall
	cmp 16(%rsp), %rax
	je 2b
	mov 0(%rsp), %rax
	mov %rbx, 0(%rax)
	mov %rbp, 8(%rax)
	mov %r8, 16(%rax)
	mov %r9, 24(%rax)
	mov %r10, 32(%rax)
	mov %r12, 40(%rax)
	mov %r13, 48(%rax)
	mov %r14, 56(%rax)
	mov %r15, 64(%rax)
	mov %rdi, 72(%rax)
	mov %rsi, 80(%rax)
	mov %rdx, 88(%rax)
	mov 8(%rsp), %rax
	cmpq $0, 24(%rsp)
	jne 5f
	movdqu %xmm0, 0(%rax)
	movdqu %xmm1, 32(%rax)
	movdqu %xmm2, 64(%rax)
	movdqu %xmm3, 96(%rax)
	movdqu %xmm4, 128(%rax)
	movdqu %xmm5, 160(%rax)
	movdqu %xmm6, 192(%rax)
	movdqu %xmm7, 224(%rax)
	movdqu %xmm8, 256(%rax)
	movdqu %xmm9, 288(%rax)
	movdqu %xmm10, 320(%rax)
	movdqu %xmm11, 352(%rax)
	movdqu %xmm12, 384(%rax)
	movdqu %xmm13, 416(%rax)
	movdqu %xmm14, 448(%rax)
	movdqu %xmm15, 480(%rax)
	jmp 3f
5:
	vmovdqu %ymm0, 0(%rax)
	vmovdqu %ymm1, 32(%rax)
	vmovdqu %ymm2, 64(%rax)
	vmovdqu %ymm3, 96(%rax)
	vmovdqu %ymm4, 128(%rax)
	vmovdqu %ymm5, 160(%rax)
	vmovdqu %ymm6, 192(%rax)
	vmovdqu %ymm7, 224(%rax)
	vmovdqu %ymm8, 256(%rax)
	vmovdqu %ymm9, 288(%rax)
	vmovdqu %ymm10, 320(%rax)
	vmovdqu %ymm11, 352(%rax)
	vmovdqu %ymm12, 384(%rax)
	vmovdqu %ymm13, 416(%rax)
	vmovdqu %ymm14, 448(%rax)
	vmovdqu %ymm15, 480(%rax)
	cmpq $2, 24(%rsp)
	jne 3f
	vmovdqu64 %zmm16, 512(%rax)
	vmovdqu64 %zmm17, 576(%rax)
	vmovdqu64 %zmm18, 640(%rax)
	vmovdqu64 %zmm19, 704(%rax)
	vmovdqu64 %zmm20, 768(%rax)
	vmovdqu64 %zmm21, 832(%rax)
	vmovdqu64 %zmm22, 896(%rax)
	vmovdqu64 %zmm23, 960(%rax)
	vmovdqu64 %zmm24, 1024(%rax)
	vmovdqu64 %zmm25, 1088(%rax)
	vmovdqu64 %zmm26, 1152(%rax)
	vmovdqu64 %zmm27, 1216(%rax)
	vmovdqu64 %zmm28, 1280(%rax)
	vmovdqu64 %zmm29, 1344(%rax)
	vmovdqu64 %zmm30, 1408(%rax)
	vmovdqu64 %zmm31, 1472(%rax)
	kmovq %k1, 1536(%rax)
	kmovq %k2, 1544(%rax)
	kmovq %k3, 1552(%rax)
	kmovq %k4, 1560(%rax)
	kmovq %k5, 1568(%rax)
	kmovq %k6, 1576(%rax)
	kmovq %k7, 1584(%rax)
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

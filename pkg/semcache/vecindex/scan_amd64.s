#include "textflag.h"

// func scanHeadAVX2(hq *int8, gq *float32, k int, tau, w *float32, par *[4]float32, mask *uint8, n int)
//
// Pass 1 over n points (n a multiple of 32, k >= 1) stored in blocks of 32
// (see scanHeadGo): per point acc = Σ_j gq[j]·float(q_j), ub = acc +
// un·tau + qm·w, and a mask bit set when ub >= thr; four 8-point lanes.
TEXT ·scanHeadAVX2(SB), NOSPLIT, $0-64
	MOVQ hq+0(FP), SI
	MOVQ gq+8(FP), DX
	MOVQ k+16(FP), CX
	MOVQ tau+24(FP), R8
	MOVQ w+32(FP), R9
	MOVQ par+40(FP), R10
	MOVQ mask+48(FP), DI
	MOVQ n+56(FP), R11
	VBROADCASTSS 0(R10), Y12
	VBROADCASTSS 4(R10), Y13
	VBROADCASTSS 8(R10), Y14

loop32:
	CMPQ R11, $32
	JLT  done
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ DX, R12
	MOVQ CX, R13

inner32:
	VBROADCASTSS (R12), Y15
	VPMOVSXBD    0(SI), Y4
	VPMOVSXBD    8(SI), Y5
	VPMOVSXBD    16(SI), Y6
	VPMOVSXBD    24(SI), Y7
	VCVTDQ2PS    Y4, Y4
	VCVTDQ2PS    Y5, Y5
	VCVTDQ2PS    Y6, Y6
	VCVTDQ2PS    Y7, Y7
	VFMADD231PS  Y15, Y4, Y0
	VFMADD231PS  Y15, Y5, Y1
	VFMADD231PS  Y15, Y6, Y2
	VFMADD231PS  Y15, Y7, Y3
	ADDQ         $32, SI
	ADDQ         $4, R12
	DECQ         R13
	JNZ          inner32

	VFMADD231PS 0(R8), Y12, Y0
	VFMADD231PS 32(R8), Y12, Y1
	VFMADD231PS 64(R8), Y12, Y2
	VFMADD231PS 96(R8), Y12, Y3
	VFMADD231PS 0(R9), Y13, Y0
	VFMADD231PS 32(R9), Y13, Y1
	VFMADD231PS 64(R9), Y13, Y2
	VFMADD231PS 96(R9), Y13, Y3
	VCMPPS      $0x1d, Y14, Y0, Y0
	VCMPPS      $0x1d, Y14, Y1, Y1
	VCMPPS      $0x1d, Y14, Y2, Y2
	VCMPPS      $0x1d, Y14, Y3, Y3
	VMOVMSKPS   Y0, AX
	MOVB        AX, 0(DI)
	VMOVMSKPS   Y1, AX
	MOVB        AX, 1(DI)
	VMOVMSKPS   Y2, AX
	MOVB        AX, 2(DI)
	VMOVMSKPS   Y3, AX
	MOVB        AX, 3(DI)

	ADDQ $128, R8
	ADDQ $128, R9
	ADDQ $4, DI
	SUBQ $32, R11
	JMP  loop32

done:
	VZEROUPPER
	RET

// func dotI8AVX2(gv *float32, q *int8, k int) float32
//
// Σ_j g[j]·float(q[j]) for k a positive multiple of 8.
TEXT ·dotI8AVX2(SB), NOSPLIT, $0-28
	MOVQ gv+0(FP), DX
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	CMPQ CX, $16
	JLT  tail8

loop16:
	VPMOVSXBD   0(SI), Y4
	VPMOVSXBD   8(SI), Y5
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y5, Y5
	VFMADD231PS 0(DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	ADDQ        $16, SI
	ADDQ        $64, DX
	SUBQ        $16, CX
	CMPQ        CX, $16
	JGE         loop16

tail8:
	CMPQ CX, $8
	JLT  sum
	VPMOVSXBD   0(SI), Y4
	VCVTDQ2PS   Y4, Y4
	VFMADD231PS 0(DX), Y4, Y0

sum:
	VADDPS       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, ret+24(FP)
	VZEROUPPER
	RET

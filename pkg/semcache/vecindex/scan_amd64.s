#include "textflag.h"

// func scanHeadAVX2(hq *int8, gp *int32, pairs int, tau, w *float32, par *[4]float32, mask *uint8, n int)
//
// Pass 1 over n points (n a multiple of 32, pairs >= 1) stored in blocks
// of 32 (see scanHeadGo): per point the exact int32 sum acc of q_j·G_j two
// coordinates an instruction (VPMADDWD), then ub = λ·acc + un·tau + qm·w
// and a mask bit set when ub >= thr; four 8-point lanes.
TEXT ·scanHeadAVX2(SB), NOSPLIT, $0-64
	MOVQ hq+0(FP), SI
	MOVQ gp+8(FP), DX
	MOVQ pairs+16(FP), CX
	MOVQ tau+24(FP), R8
	MOVQ w+32(FP), R9
	MOVQ par+40(FP), R10
	MOVQ mask+48(FP), DI
	MOVQ n+56(FP), R11
	VBROADCASTSS 0(R10), Y12
	VBROADCASTSS 4(R10), Y13
	VBROADCASTSS 8(R10), Y14
	VBROADCASTSS 12(R10), Y11

loop32:
	CMPQ R11, $32
	JLT  done
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ  DX, R12
	MOVQ  CX, R13

inner32:
	VPBROADCASTD (R12), Y15
	VPMOVSXBW    0(SI), Y4
	VPMOVSXBW    16(SI), Y5
	VPMOVSXBW    32(SI), Y6
	VPMOVSXBW    48(SI), Y7
	VPMADDWD     Y15, Y4, Y4
	VPMADDWD     Y15, Y5, Y5
	VPMADDWD     Y15, Y6, Y6
	VPMADDWD     Y15, Y7, Y7
	VPADDD       Y4, Y0, Y0
	VPADDD       Y5, Y1, Y1
	VPADDD       Y6, Y2, Y2
	VPADDD       Y7, Y3, Y3
	ADDQ         $64, SI
	ADDQ         $4, R12
	DECQ         R13
	JNZ          inner32

	VCVTDQ2PS   Y0, Y0
	VCVTDQ2PS   Y1, Y1
	VCVTDQ2PS   Y2, Y2
	VCVTDQ2PS   Y3, Y3
	VMULPS      Y11, Y0, Y0
	VMULPS      Y11, Y1, Y1
	VMULPS      Y11, Y2, Y2
	VMULPS      Y11, Y3, Y3
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

// func pass2AVX2(recs *headRec, idx *int32, n int, gs *float32, k int, par *[4]float32, out *float32)
//
// For j < n, with r = recs[idx[j]]: out[j] = Σ_l gs[l]·float(r.q[l]) +
// un·r.tau + qm·r.w (k a positive multiple of 8, records of 128 bytes with
// tau at 120 and w at 124). The records are read in index order, so the
// one eight ahead is prefetched.
TEXT ·pass2AVX2(SB), NOSPLIT, $0-56
	MOVQ   recs+0(FP), SI
	MOVQ   idx+8(FP), R8
	MOVQ   n+16(FP), R9
	MOVQ   gs+24(FP), DX
	MOVQ   k+32(FP), CX
	MOVQ   par+40(FP), R10
	MOVQ   out+48(FP), DI
	VMOVSS 0(R10), X12
	VMOVSS 4(R10), X13
	XORQ   R11, R11

loop:
	CMPQ R11, R9
	JGE  done
	LEAQ 8(R11), AX
	CMPQ AX, R9
	JGE  fetched
	MOVLQSX    (R8)(AX*4), BX
	SHLQ       $7, BX
	PREFETCHT0 (SI)(BX*1)
	PREFETCHT0 64(SI)(BX*1)

fetched:
	MOVLQSX (R8)(R11*4), BX
	SHLQ    $7, BX
	LEAQ    (SI)(BX*1), AX
	VXORPS  Y0, Y0, Y0
	VXORPS  Y1, Y1, Y1
	MOVQ    DX, R12
	MOVQ    AX, R13
	MOVQ    CX, R10

inner:
	CMPQ        R10, $16
	JLT         tail
	VPMOVSXBD   0(R13), Y4
	VPMOVSXBD   8(R13), Y5
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y5, Y5
	VFMADD231PS 0(R12), Y4, Y0
	VFMADD231PS 32(R12), Y5, Y1
	ADDQ        $16, R13
	ADDQ        $64, R12
	SUBQ        $16, R10
	JMP         inner

tail:
	CMPQ        R10, $8
	JLT         sum
	VPMOVSXBD   0(R13), Y4
	VCVTDQ2PS   Y4, Y4
	VFMADD231PS 0(R12), Y4, Y0

sum:
	VADDPS       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VFMADD231SS  120(AX), X12, X0
	VFMADD231SS  124(AX), X13, X0
	VMOVSS       X0, (DI)(R11*4)
	INCQ         R11
	JMP          loop

done:
	VZEROUPPER
	RET

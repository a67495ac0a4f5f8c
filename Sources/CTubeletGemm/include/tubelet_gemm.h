// Tubelet's own single-precision GEMM for AVX2 + FMA: the right-hand side is packed once (weights at
// load time, attention keys and values once per window and head) into panels of 16 columns, and a
// 6x16 register tile runs over row-major A. Single-threaded: callers split rows across threads.
// The result of each output element depends only on its row of A and its column of B (fixed k
// order and k blocks), never on m or on where the row sits in the call, so streaming reuse that
// recomputes fewer rows stays bitwise equal to a full pass.
#ifndef TUBELET_GEMM_H
#define TUBELET_GEMM_H

#include <stddef.h>

#define TUBELET_GEMM_PANEL 16

/// What happens to each k-sum s[i, j] of A·B before it lands in C:
/// c = alpha·rowScale[i]·s + (accumulate ? c : 0) + addend[i, j] + bias[j], then GELU (exact, erf).
/// Null pointers and zero flags leave their step out. Row i of the addend is at addend + i·addendStride,
/// or at addendRows[i] where addendRows is given (rows that are not evenly spaced: a Swin window's
/// position bias rows, each a run of a per-query-position strip).
typedef struct {
    float alpha;
    int accumulate;
    const float *addend;
    long addendStride;
    const float *const *addendRows;
    const float *bias;
    const float *rowScale;
    int gelu;
} tubelet_epilogue;

/// Floats a packed [k, n] right-hand side takes: n rounded up to the panel width, times k.
size_t tubelet_packed_floats(int k, int n);

/// Packs B [k, n], element (kk, j) at b[kk·strideK + j·strideN], into `packed`: panel p holds
/// rows kk = 0..<k of 16 floats B[kk, 16p + 0..<16], zero past n.
/// A PyTorch linear weight W [n, k] (y = x·Wᵀ) is strideK 1, strideN k.
void tubelet_pack_b(const float *b, long strideK, long strideN, int k, int n, float *packed);

/// C[m, n] = epilogue(A[m, k] · B[k, n]) with B packed by `tubelet_pack_b`; rows lda / ldc apart.
void tubelet_sgemm_packed(int m, int n, int k, const float *a, long lda, const float *packed,
                          float *c, long ldc, const tubelet_epilogue *epilogue);

/// x[j] = exp(x[j] - max(x)) in place; returns the sum (a softmax without its division).
float tubelet_exponentiate_row(float *x, int n);

/// x[r, j] = GELU(x[r, j] + bias[j]) in place (exact form, erf; the GEMM epilogue's function), for
/// `rows` rows of `width` floats, `stride` floats apart; bias may be null.
void tubelet_gelu_rows(float *x, int rows, int width, long stride, const float *bias);

#endif

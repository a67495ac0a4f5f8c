// Packed-panel SGEMM with fused epilogues for AVX2 + FMA (see include/tubelet_gemm.h).
//
// Why our own: OpenBLAS 0.3.21 on Zen packs both operands on every call (10% of a Swin-T clip),
// zeroes C for beta = 0 (2.5%), and runs the skinny stage-1 shapes (K or N = 96) at ~40% of peak.
// Weights never change, so they are packed once; activations are read in place. Blocking:
// k in blocks of KC (a 16-column panel block, KC·64 bytes, stays in L1), rows in blocks of up to
// A_BLOCK_FLOATS / kc (a block of A, 256 KB, stays in L2 while every panel passes over it). Each
// row block streams the whole weight once, from L3 or memory where it does not fit in L2 (stages
// 3-4: 1.8-9.4 MB), so row blocks are as large as L2 allows rather than fixed (48 rows before:
// stage-4 shapes 55 -> 64 GFLOP/s with the other core busy, interleaved microbenchmark).
#include "tubelet_gemm.h"
#include <immintrin.h>
#include <math.h>

#ifndef KC_SIZE
#define KC_SIZE 512
#endif
#ifndef A_BLOCK_FLOATS
#define A_BLOCK_FLOATS 65536
#endif
enum { NR = TUBELET_GEMM_PANEL, MR = 6, KC = KC_SIZE };

static inline int min_int(int a, int b) { return a < b ? a : b; }

// out[c·ldo + r] = in[r·ldi + c] for an 8x8 block: rows interleaved in pairs, then quads, then halves.
static inline void transpose8x8(const float *in, long ldi, float *out, long ldo) {
    __m256 r0 = _mm256_loadu_ps(in), r1 = _mm256_loadu_ps(in + ldi), r2 = _mm256_loadu_ps(in + 2 * ldi);
    __m256 r3 = _mm256_loadu_ps(in + 3 * ldi), r4 = _mm256_loadu_ps(in + 4 * ldi), r5 = _mm256_loadu_ps(in + 5 * ldi);
    __m256 r6 = _mm256_loadu_ps(in + 6 * ldi), r7 = _mm256_loadu_ps(in + 7 * ldi);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(out + 0 * ldo, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(out + 1 * ldo, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(out + 2 * ldo, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(out + 3 * ldo, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(out + 4 * ldo, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(out + 5 * ldo, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(out + 6 * ldo, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(out + 7 * ldo, _mm256_permute2f128_ps(u3, u7, 0x31));
}

size_t tubelet_packed_floats(int k, int n) {
    return (size_t)((n + NR - 1) / NR) * NR * (size_t)k;
}

void tubelet_pack_b(const float *b, long strideK, long strideN, int k, int n, float *packed) {
    int panels = (n + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * (size_t)k * NR;
        int cols = min_int(NR, n - p * NR);
        const float *src = b + (long)p * NR * strideN;
        if (strideK == 1) {
            // Column j of the panel is contiguous in b (a linear weight's row, a key's head slice):
            // a transpose, by 8x8 blocks in registers where whole (every window's keys, per head).
            int j = 0;
            for (; j + 8 <= cols; j += 8) {
                int kk = 0;
                for (; kk + 8 <= k; kk += 8) transpose8x8(src + (long)j * strideN + kk, strideN, dst + (size_t)kk * NR + j, NR);
                for (; kk < k; kk++)
                    for (int jj = j; jj < j + 8; jj++) dst[(size_t)kk * NR + jj] = src[jj * strideN + kk];
            }
            for (; j < cols; j++)
                for (int kk = 0; kk < k; kk++) dst[(size_t)kk * NR + j] = src[j * strideN + kk];
        } else {
            for (int kk = 0; kk < k; kk++)
                for (int j = 0; j < cols; j++) dst[(size_t)kk * NR + j] = src[kk * strideK + j * strideN];
        }
        for (int j = cols; j < NR; j++)
            for (int kk = 0; kk < k; kk++) dst[(size_t)kk * NR + j] = 0;
    }
}

// 2^t on 8 lanes for the softmax, t = (x - max(x))·log2(e) <= 0: n = round(t) and f = t - n in
// [-0.5, 0.5], 2^f by a degree-6 polynomial fitted for relative error (9e-8 evaluated in float),
// and 2^n added straight into the result's exponent bits. t is clamped at -125 so the result stays a
// normal float (2^-125, 2e-38, where exp underflows: nothing beside a row's max of 1). Fewer
// operations than the Cephes expf with its Cody-Waite reduction used before: a 48 x 392 block of
// scores, max pass included, 0.46 -> 0.37 ns per score; the softmax's error against double
// precision 1.6e-7 -> 1.5e-7.
static inline __m256 exp2_softmax256(__m256 t) {
    t = _mm256_max_ps(t, _mm256_set1_ps(-125.0f));
    const __m256 magic = _mm256_set1_ps(12582912.0f);  // 1.5·2^23: adding it rounds to an integer
    __m256 shifted = _mm256_add_ps(t, magic);
    __m256 f = _mm256_sub_ps(t, _mm256_sub_ps(shifted, magic));
    __m256 p = _mm256_set1_ps(1.5345828890e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3399932214e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6184888972e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5503287745e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022646891e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314720574e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0000000006f));
    // n sits in the low mantissa bits of `shifted`; shifted left by 23 it is n in the exponent field.
    __m256i exponent = _mm256_slli_epi32(_mm256_castps_si256(shifted), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), exponent));
}

// erf on 8 lanes: the rational approximation Eigen and XLA use (odd degree-13 numerator over an
// even degree-8 denominator on x clamped to [-4, 4], where erf is ±1 in float beyond; absolute
// error about 3e-7). No exp and one division: about half the cost of Abramowitz & Stegun 7.1.26
// with its exp, which made GELU a sixth of the stage-1 fc1 GEMM.
static inline __m256 erf256(__m256 v) {
    __m256 x = _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(4.0f)), _mm256_set1_ps(-4.0f));
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-2.72614225801306e-10f), _mm256_set1_ps(2.77068142495902e-08f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.10102402082508e-06f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-5.69250639462346e-05f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-7.34990630326855e-04f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.95459980854025e-03f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-1.60960333262415e-02f));
    p = _mm256_mul_ps(x, p);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(-1.45660718464996e-05f), _mm256_set1_ps(-2.13374055278905e-04f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.68282697438203e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-7.37332916720468e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.42647390514189e-02f));
    return _mm256_div_ps(p, q);
}

// GELU, exact form as torch.nn.GELU(): 0.5·x·(1 + erf(x/√2)).
static inline __m256 gelu256(__m256 v) {
    __m256 erf = erf256(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

void tubelet_gelu_rows(float *x, int rows, int width, long stride, const float *bias) {
    for (int r = 0; r < rows; r++) {
        float *row = x + (long)r * stride;
        int j = 0;
        for (; j + 8 <= width; j += 8) {
            __m256 v = _mm256_loadu_ps(row + j);
            if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
            _mm256_storeu_ps(row + j, gelu256(v));
        }
        if (j < width) {
            float tail[8] __attribute__((aligned(32))) = {0};
            for (int i = 0; j + i < width; i++) tail[i] = row[j + i] + (bias ? bias[j + i] : 0);
            _mm256_store_ps(tail, gelu256(_mm256_load_ps(tail)));
            for (int i = 0; j + i < width; i++) row[j + i] = tail[i];
        }
    }
}

// The epilogue on one row of 16 sums held in two registers, stored to c. `add` and `bias` point at
// this row's 16 columns of the addend and the bias, or are null. `first`: the first k block (start
// from c only when accumulating, plus the addend); later blocks add onto the partial sums already
// in c. `last`: add the bias, apply GELU.
static inline __attribute__((always_inline))
void finish_row(__m256 v0, __m256 v1, float *c, const float *add, const float *bias, int row,
                const tubelet_epilogue *e, int first, int last) {
    if (e->alpha != 1.0f || e->rowScale) {
        __m256 s = _mm256_set1_ps(e->rowScale ? e->alpha * e->rowScale[row] : e->alpha);
        v0 = _mm256_mul_ps(v0, s);
        v1 = _mm256_mul_ps(v1, s);
    }
    if (!first || e->accumulate) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(c), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), v1);
    }
    if (first && add) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(add));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(add + 8));
    }
    if (last && bias) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias + 8));
    }
    if (last && e->gelu) {
        v0 = gelu256(v0);
        v1 = gelu256(v1);
    }
    _mm256_storeu_ps(c, v0);
    _mm256_storeu_ps(c + 8, v1);
}

// Row `row`'s addend at column col0, or null.
static inline __attribute__((always_inline))
const float *addend_at(const tubelet_epilogue *e, int row, int col0) {
    if (e->addendRows) return e->addendRows[row] + col0;
    return e->addend ? e->addend + (long)row * e->addendStride + col0 : 0;
}

// `finish_row` for a full row of the tile, reading the addend and bias in place.
static inline __attribute__((always_inline))
void finish_full_row(__m256 v0, __m256 v1, float *c, int row, int col0,
                     const tubelet_epilogue *e, int first, int last) {
    finish_row(v0, v1, c, addend_at(e, row, col0), e->bias ? e->bias + col0 : 0, row, e, first, last);
}

// Epilogues fixed at compile time. `finish_row` tests every flag for every row of every tile, about
// 40 cycles a tile: a sixth of a 6x16 tile with k = 32 (attention's q·kᵀ), 6% with k = 96 (stage 1's
// linears). Calls whose k fits one block and whose steps are one of the common sets below run an
// instance of the loops where those tests are constants; the rest take `finish_row`. Both do the same
// float operations in the same order, so a row's result does not depend on which ran it.
enum {
    STEP_ALPHA = 1,       // alpha != 1, no row scale
    STEP_ROW_SCALE = 2,   // alpha·rowScale[i]
    STEP_ACCUMULATE = 4,
    STEP_ADDEND = 8,
    STEP_BIAS = 16,
    STEP_GELU = 32,
    STEP_ADDEND_ROWS = 64,  // with STEP_ADDEND: its rows from addendRows
    STEPS_GENERIC = -1,   // any steps and k blocks: `finish_row`
};

static inline __attribute__((always_inline))
void finish_fixed_row(__m256 v0, __m256 v1, float *c, int row, int col0, const tubelet_epilogue *e, int steps) {
    if (steps & (STEP_ALPHA | STEP_ROW_SCALE)) {
        __m256 s = _mm256_set1_ps((steps & STEP_ROW_SCALE) ? e->alpha * e->rowScale[row] : e->alpha);
        v0 = _mm256_mul_ps(v0, s);
        v1 = _mm256_mul_ps(v1, s);
    }
    if (steps & STEP_ACCUMULATE) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(c), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), v1);
    }
    if (steps & STEP_ADDEND) {
        const float *add = (steps & STEP_ADDEND_ROWS) ? e->addendRows[row] + col0 : e->addend + (long)row * e->addendStride + col0;
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(add));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(add + 8));
    }
    if (steps & STEP_BIAS) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(e->bias + col0));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(e->bias + col0 + 8));
    }
    if (steps & STEP_GELU) {
        v0 = gelu256(v0);
        v1 = gelu256(v1);
    }
    _mm256_storeu_ps(c, v0);
    _mm256_storeu_ps(c + 8, v1);
}

/// The steps of `e` as STEP_ flags, for a call whose k fits one block.
static int epilogue_steps(const tubelet_epilogue *e) {
    return (e->rowScale ? STEP_ROW_SCALE : e->alpha != 1.0f ? STEP_ALPHA : 0) | (e->accumulate ? STEP_ACCUMULATE : 0)
        | (e->addendRows ? STEP_ADDEND | STEP_ADDEND_ROWS : e->addend ? STEP_ADDEND : 0)
        | (e->bias ? STEP_BIAS : 0) | (e->gelu ? STEP_GELU : 0);
}

// `finish_row` for a row of an edge tile (fewer than 6 rows, or the last panel with cols < 16), from
// the sums in memory: on zero-padded copies of c, the addend and the bias, so that nothing past
// column n is read or written.
static void finish_edge_row(const float *sums, float *c, int cols, int row, int col0,
                            const tubelet_epilogue *e, int first, int last) {
    float cBuffer[NR] __attribute__((aligned(32))) = {0};
    float addBuffer[NR] __attribute__((aligned(32))) = {0};
    float biasBuffer[NR] __attribute__((aligned(32))) = {0};
    const float *add = addend_at(e, row, col0);
    for (int j = 0; j < cols; j++) {
        cBuffer[j] = c[j];
        if (add) addBuffer[j] = add[j];
        if (e->bias) biasBuffer[j] = e->bias[col0 + j];
    }
    finish_row(_mm256_loadu_ps(sums), _mm256_loadu_ps(sums + 8), cBuffer, add ? addBuffer : 0,
               e->bias ? biasBuffer : 0, row, e, first, last);
    for (int j = 0; j < cols; j++) c[j] = cBuffer[j];
}

// The 6x16 register tile: 6 rows of A at a + r·lda, kc steps of the packed panel b.
static inline __attribute__((always_inline))
void tile(int kc, const float *a, long lda, const float *b, float *c, long ldc, int row0, int col0,
          const tubelet_epilogue *e, int first, int last, int steps) {
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        b += NR;
        __m256 x;
        x = _mm256_broadcast_ss(a0 + kk); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + kk); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + kk); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + kk); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + kk); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + kk); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    // The epilogue runs on the registers.
    if (steps != STEPS_GENERIC) {
        finish_fixed_row(c00, c01, c, row0 + 0, col0, e, steps);
        finish_fixed_row(c10, c11, c + ldc, row0 + 1, col0, e, steps);
        finish_fixed_row(c20, c21, c + 2 * ldc, row0 + 2, col0, e, steps);
        finish_fixed_row(c30, c31, c + 3 * ldc, row0 + 3, col0, e, steps);
        finish_fixed_row(c40, c41, c + 4 * ldc, row0 + 4, col0, e, steps);
        finish_fixed_row(c50, c51, c + 5 * ldc, row0 + 5, col0, e, steps);
    } else {
        finish_full_row(c00, c01, c, row0 + 0, col0, e, first, last);
        finish_full_row(c10, c11, c + ldc, row0 + 1, col0, e, first, last);
        finish_full_row(c20, c21, c + 2 * ldc, row0 + 2, col0, e, first, last);
        finish_full_row(c30, c31, c + 3 * ldc, row0 + 3, col0, e, first, last);
        finish_full_row(c40, c41, c + 4 * ldc, row0 + 4, col0, e, first, last);
        finish_full_row(c50, c51, c + 5 * ldc, row0 + 5, col0, e, first, last);
    }
}

// The sums of an edge tile's `rows` rows (a constant in each instance) into sums[rows][16], only
// the first 8 columns where `narrow`: a window's 392 rows end in a tile of 2, and its 392 keys in a
// panel of 8, which the full tile would compute as 6 x 16 (and did: 3x and 2x the work).
// The same k order as `tile`, so the same sums bit for bit.
static inline __attribute__((always_inline))
void edge_sums(int kc, const float *a, long lda, int rows, int narrow, const float *b, float *sums) {
    __m256 acc[2 * MR];
    for (int r = 0; r < 2 * MR; r++) acc[r] = _mm256_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = narrow ? b0 : _mm256_loadu_ps(b + 8);
        b += NR;
        _Pragma("GCC unroll 6")
        for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            __m256 x = _mm256_broadcast_ss(a + r * lda + kk);
            acc[2 * r] = _mm256_fmadd_ps(x, b0, acc[2 * r]);
            if (!narrow) acc[2 * r + 1] = _mm256_fmadd_ps(x, b1, acc[2 * r + 1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm256_store_ps(sums + r * NR, acc[2 * r]);
        _mm256_store_ps(sums + r * NR + 8, narrow ? _mm256_setzero_ps() : acc[2 * r + 1]);
    }
}

// A tile with fewer than 6 rows or 16 columns; its epilogue in place where it has 16 columns, else on
// copies (`finish_edge_row`), so that nothing past column n is read or written.
static void edge_tile(int kc, const float *a, long lda, int rows, const float *b, float *c, long ldc, int cols,
                      int row0, int col0, const tubelet_epilogue *e, int first, int last) {
    float sums[MR * NR] __attribute__((aligned(32)));
    int narrow = cols <= 8;
    switch (rows) {
#define EDGE_ROWS(R) case R: if (narrow) edge_sums(kc, a, lda, R, 1, b, sums); else edge_sums(kc, a, lda, R, 0, b, sums); break;
    EDGE_ROWS(1) EDGE_ROWS(2) EDGE_ROWS(3) EDGE_ROWS(4) EDGE_ROWS(5) EDGE_ROWS(6)
#undef EDGE_ROWS
    default: return;
    }
    for (int r = 0; r < rows; r++) {
        if (cols == NR)
            finish_full_row(_mm256_load_ps(sums + r * NR), _mm256_load_ps(sums + r * NR + 8), c + (long)r * ldc,
                            row0 + r, col0, e, first, last);
        else
            finish_edge_row(sums + r * NR, c + (long)r * ldc, cols, row0 + r, col0, e, first, last);
    }
}

// One k block of the product over every row block and panel; `steps` is a constant in each instance.
static inline __attribute__((always_inline))
void run_k_block(int m, int n, int k, int k0, int kc, const float *a, long lda, const float *packed,
                 float *c, long ldc, const tubelet_epilogue *e, int steps) {
    int panels = (n + NR - 1) / NR;
    int first = k0 == 0, last = k0 + kc == k;
    // Even row blocks, a multiple of the tile's rows, each at most A_BLOCK_FLOATS / kc rows.
    int mcMax = (A_BLOCK_FLOATS / kc) / MR * MR;
    if (mcMax < MR) mcMax = MR;
    int mBlocks = (m + mcMax - 1) / mcMax;
    int mc0 = ((m + mBlocks - 1) / mBlocks + MR - 1) / MR * MR;
    for (int m0 = 0; m0 < m; m0 += mc0) {
        int mc = min_int(mc0, m - m0);
        for (int p = 0; p < panels; p++) {
            const float *panel = packed + (size_t)p * (size_t)k * NR + (size_t)k0 * NR;
            int cols = min_int(NR, n - p * NR);
            for (int i = 0; i < mc; i += MR) {
                int row = m0 + i, rows = min_int(MR, mc - i);
                if (rows == MR && cols == NR)
                    tile(kc, a + (long)row * lda + k0, lda, panel, c + (long)row * ldc + p * NR, ldc, row, p * NR,
                         e, first, last, steps);
                else
                    edge_tile(kc, a + (long)row * lda + k0, lda, rows, panel, c + (long)row * ldc + p * NR, ldc, cols,
                              row, p * NR, e, first, last);
            }
        }
    }
}

void tubelet_sgemm_packed(int m, int n, int k, const float *a, long lda, const float *packed,
                          float *c, long ldc, const tubelet_epilogue *epilogue) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    // A local copy: stores to c (float) could alias the caller's struct, which would make the
    // compiler reload every flag and pointer after each row's store.
    const tubelet_epilogue local = *epilogue, *e = &local;
    // Even k blocks (no short tail block), each at most KC.
    int kBlocks = (k + KC - 1) / KC;
    int kcEven = (k + kBlocks - 1) / kBlocks;
    if (kBlocks == 1) {
        // The epilogues of Swin's products: qkv (bias), proj (none), fc1 (bias, GELU), fc2
        // (accumulate, bias), q·kᵀ (alpha, addend: the position bias, tile or strips), scores·v (row scale).
        switch (epilogue_steps(e)) {
        case 0: run_k_block(m, n, k, 0, k, a, lda, packed, c, ldc, e, 0); return;
        case STEP_BIAS: run_k_block(m, n, k, 0, k, a, lda, packed, c, ldc, e, STEP_BIAS); return;
        case STEP_BIAS | STEP_GELU: run_k_block(m, n, k, 0, k, a, lda, packed, c, ldc, e, STEP_BIAS | STEP_GELU); return;
        case STEP_ACCUMULATE | STEP_BIAS: run_k_block(m, n, k, 0, k, a, lda, packed, c, ldc, e, STEP_ACCUMULATE | STEP_BIAS); return;
        case STEP_ALPHA | STEP_ADDEND: run_k_block(m, n, k, 0, k, a, lda, packed, c, ldc, e, STEP_ALPHA | STEP_ADDEND); return;
        case STEP_ALPHA | STEP_ADDEND | STEP_ADDEND_ROWS:
            run_k_block(m, n, k, 0, k, a, lda, packed, c, ldc, e, STEP_ALPHA | STEP_ADDEND | STEP_ADDEND_ROWS); return;
        case STEP_ROW_SCALE: run_k_block(m, n, k, 0, k, a, lda, packed, c, ldc, e, STEP_ROW_SCALE); return;
        default: break;
        }
    }
    for (int k0 = 0; k0 < k; k0 += kcEven)
        run_k_block(m, n, k, k0, min_int(kcEven, k - k0), a, lda, packed, c, ldc, e, STEPS_GENERIC);
}

float tubelet_exponentiate_row(float *x, int n) {
    // Two accumulators in each pass, so that neither the max nor the sum waits on one chain.
    __m256 max0 = _mm256_set1_ps(-INFINITY), max1 = max0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        max0 = _mm256_max_ps(max0, _mm256_loadu_ps(x + i));
        max1 = _mm256_max_ps(max1, _mm256_loadu_ps(x + i + 8));
    }
    for (; i + 8 <= n; i += 8) max0 = _mm256_max_ps(max0, _mm256_loadu_ps(x + i));
    float lanes[8] __attribute__((aligned(32)));
    _mm256_store_ps(lanes, _mm256_max_ps(max0, max1));
    float maximum = -INFINITY;
    for (int j = 0; j < 8; j++) maximum = lanes[j] > maximum ? lanes[j] : maximum;
    for (; i < n; i++) maximum = x[i] > maximum ? x[i] : maximum;
    // t = (x - max)·log2(e): the max's own lane is exactly 2^0 = 1.
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    __m256 m8 = _mm256_set1_ps(maximum), sum0 = _mm256_setzero_ps(), sum1 = sum0;
    for (i = 0; i + 16 <= n; i += 16) {
        __m256 v0 = exp2_softmax256(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8), log2e));
        __m256 v1 = exp2_softmax256(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m8), log2e));
        _mm256_storeu_ps(x + i, v0);
        _mm256_storeu_ps(x + i + 8, v1);
        sum0 = _mm256_add_ps(sum0, v0);
        sum1 = _mm256_add_ps(sum1, v1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp2_softmax256(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8), log2e));
        _mm256_storeu_ps(x + i, v);
        sum0 = _mm256_add_ps(sum0, v);
    }
    _mm256_store_ps(lanes, _mm256_add_ps(sum0, sum1));
    float sum = 0;
    for (int j = 0; j < 8; j++) sum += lanes[j];
    if (i < n) {
        float tail[8] __attribute__((aligned(32)));
        for (int j = 0; j < 8; j++) tail[j] = i + j < n ? x[i + j] : maximum;
        _mm256_store_ps(tail, exp2_softmax256(_mm256_mul_ps(_mm256_sub_ps(_mm256_load_ps(tail), m8), log2e)));
        for (int j = 0; i + j < n; j++) { x[i + j] = tail[j]; sum += tail[j]; }
    }
    return sum;
}

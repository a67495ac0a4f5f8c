// BLIS (Debian's libblis-dev) through its CBLAS layer. Debian installs BLIS's cblas.h under a
// per-threading-model directory (blis-openmp, blis-pthread, ...), so the few declarations Tubelet
// uses are repeated here; they are the standard CBLAS ABI (32-bit BLAS integers, as Debian builds it).
#ifndef TUBELET_CBLIS_SHIM_H
#define TUBELET_CBLIS_SHIM_H
#include <stdint.h>

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB,
                 int32_t m, int32_t n, int32_t k, float alpha, const float *a, int32_t lda,
                 const float *b, int32_t ldb, float beta, float *c, int32_t ldc);

// BLIS's own threading control (dim_t is a 64-bit integer in Debian's build).
void bli_thread_set_num_threads(int64_t threads);
#endif

// Our packed GEMM (Sources/CTubeletGemm) beside OpenBLAS's cblas_sgemm on the Swin-T shapes that
// matter, single-threaded, y = x·Wᵀ (the linear layers) and the per-window attention products.
// Build and run: tools/gemm_bench.sh
#include "tubelet_gemm.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    // m x n x k: stage-1 qkv, stage-1 fc2, stage-2 qkv, stage-3 fc1, stage-4 qkv, stage-4 fc2
    // (rows per thread of a 16-frame clip), a 48-row block of q·kᵀ and of scores·v.
    const int shapes[][3] = {{12544, 288, 96}, {12544, 96, 384}, {3136, 576, 192}, {784, 1536, 384},
                             {196, 2304, 768}, {196, 768, 3072}, {48, 392, 32}, {48, 32, 392}};
    openblas_set_num_threads(1);
    srand(1);
    printf("%-18s %12s %12s %8s\n", "m x n x k", "Tubelet", "OpenBLAS", "ratio");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *c = malloc(sizeof(float) * m * n);
        float *packed = aligned_alloc(64, (sizeof(float) * tubelet_packed_floats(k, n) + 63) / 64 * 64);
        for (long i = 0; i < (long)m * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
        for (long i = 0; i < (long)n * k; i++) w[i] = rand() / (float)RAND_MAX - 0.5f;
        tubelet_pack_b(w, 1, k, k, n, packed);
        tubelet_epilogue plain = {.alpha = 1};
        double flop = 2.0 * m * n * k, ours = 1e9, blas = 1e9;
        int reps = (int)(2e9 / flop) + 1;
        for (int round = 0; round < 5; round++) {  // interleaved, best of 5
            double t = now();
            for (int i = 0; i < reps; i++) tubelet_sgemm_packed(m, n, k, a, k, packed, c, n, &plain);
            t = (now() - t) / reps;
            if (t < ours) ours = t;
            t = now();
            for (int i = 0; i < reps; i++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, w, k, 0, c, n);
            t = (now() - t) / reps;
            if (t < blas) blas = t;
        }
        char name[32];
        snprintf(name, sizeof name, "%dx%dx%d", m, n, k);
        printf("%-18s %7.1f GF/s %7.1f GF/s %7.2fx\n", name, flop / ours * 1e-9, flop / blas * 1e-9, blas / ours);
        free(a); free(w); free(c); free(packed);
    }
    return 0;
}

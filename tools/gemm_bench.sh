#!/usr/bin/env bash
# Single-threaded GFLOP/s of our packed GEMM beside OpenBLAS on the Swin-T shapes (tools/gemm_bench.c).
# Needs clang (or gcc) and libopenblas-dev. Usage: tools/gemm_bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/gemm-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT
cc=$(command -v clang || command -v gcc)
"$cc" -O3 -mavx2 -mfma -I"$root/Sources/CTubeletGemm/include" "$root/tools/gemm_bench.c" \
  "$root/Sources/CTubeletGemm/gemm.c" $(pkg-config --cflags --libs openblas) -o "$out/gemm_bench"
"$out/gemm_bench"

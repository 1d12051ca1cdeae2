#!/usr/bin/env bash
# Builds ggml (llama.cpp's tensor library, the CPU backend of llama.cpp) and ggml_mxfp4.cpp, then runs the shapes
# that bench/LLAMACPP.md compares with Fp4LinearBench and Fp4MoeBench.
#
#   bench/probes/ggml_mxfp4.sh GGML_DIR [OUT_DIR]       GGML_DIR: a checkout of github.com/ggml-org/ggml
#   BUILD_ONLY=1 bench/probes/ggml_mxfp4.sh GGML_DIR     only build; then run OUT_DIR/ggml_mxfp4 yourself
#
# The flags are llama.cpp's defaults on a native build: GGML_LLAMAFILE on (standalone ggml leaves it off), the
# CPU_REPACK buffer type on (MXFP4 weights repacked to mxfp4_8x8, the layout real models get), OpenMP threads.
set -euo pipefail
GGML_DIR=${1:?usage: $0 GGML_DIR [OUT_DIR]}
OUT=${2:-/tmp/ggml-mxfp4}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
cmake -S "$GGML_DIR" -B "$GGML_DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
    -DGGML_LLAMAFILE=ON >/dev/null
cmake --build "$GGML_DIR/build" -j"$(nproc)" --target ggml ggml-base ggml-cpu >/dev/null
g++ -O2 -std=c++17 -I"$GGML_DIR/include" "$HERE/ggml_mxfp4.cpp" -o "$OUT/ggml_mxfp4" -L"$GGML_DIR/build/src" \
    -lggml -lggml-base -lggml-cpu -Wl,-rpath,"$GGML_DIR/build/src"
echo "built $OUT/ggml_mxfp4 (ggml $(git -C "$GGML_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'))"
[ -n "${BUILD_ONLY:-}" ] && exit 0
B="$OUT/ggml_mxfp4"
for shape in "16384 8192" "2048 4096" "4096 2048"; do
  for n in 1 4 16; do
    "$B" mm repack cold $shape $n 2
  done
done
for routing in distinct shared; do
  for n in 1 4 16; do
    "$B" mmid repack cold 2048 4096 $n 2 142 8 $routing
  done
done

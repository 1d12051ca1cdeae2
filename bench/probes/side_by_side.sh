#!/usr/bin/env bash
# llama.cpp's MXFP4 kernels and ours side by side (bench/LLAMACPP.md): for every case the ggml_mxfp4 timer and then
# the matching JMH benchmark, back to back, 2 threads, weights from DRAM; ReadBandwidthBench before and after.
#
#   bench/probes/side_by_side.sh [GGML_MXFP4_BINARY]     default /tmp/ggml-mxfp4/ggml_mxfp4 (ggml_mxfp4.sh builds it)
#
# Needs bench/target/benchmarks.jar (./mvnw -B -pl model,bench -am package -DskipTests) and JAVA_HOME on a JDK 25.
# Run it on an otherwise idle machine: the two sides of a case are minutes apart at most, never at the same time.
set -euo pipefail
B=${1:-/tmp/ggml-mxfp4/ggml_mxfp4}
JAVA=${JAVA_HOME:?set JAVA_HOME to a JDK 25}/bin/java
cd "$(dirname "$0")/../.."
J=("$JAVA" -jar bench/target/benchmarks.jar)
echo "== start $(date +%T)"
"${J[@]}" ReadBandwidthBench -f 1 2>&1 | grep -E "gbytes" | tail -1
for shape in 16384x8192 2048x4096 4096x2048; do
  for n in 1 4 16; do
    echo "== $shape $n tokens $(date +%T)"
    "$B" mm repack cold "${shape%x*}" "${shape#*x}" "$n" 2 2>&1 | grep GFLOP
    "${J[@]}" Fp4LinearBench -p shape="$shape" -p set=cold -p tokens="$n" -p threads=2 -f 1 -i 5 2>&1 \
        | grep -E ":gflops|:gbytes" | tail -2
  done
done
for routing in distinct shared; do
  for n in 1 4 16; do
    echo "== moe $routing $n tokens $(date +%T)"
    "$B" mmid repack cold 2048 4096 "$n" 2 142 8 "$routing" 2>&1 | grep GFLOP
    "${J[@]}" Fp4MoeBench -p routing="$routing" -p tokens="$n" -p threads=2 -f 1 -i 5 2>&1 \
        | grep -E ":gflops|:gbytes" | tail -2
  done
done
"${J[@]}" ReadBandwidthBench -f 1 2>&1 | grep -E "gbytes" | tail -1
echo "== end $(date +%T)"

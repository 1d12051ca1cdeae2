#!/usr/bin/env bash
# The cost of distribution at each load: the same `epserve bench` sweep against a local cluster (router, attention
# workers, expert workers as separate processes) and against the single-process server, then `bench-compare`.
# Usage: deploy/bench/distribution-cost.sh [OUT_DIR] [extra `epserve bench` flags...]
# Environment: MODEL (default /tmp/small, made with `make-checkpoint --preset small` if missing), RATES
# (default 0.25,0.5,1,2,inf), PROMPTS (32), IN_LEN (32), OUT_LEN (32), EXPERT_WORKERS (2), ATTENTION_WORKERS (1),
# MICRO_BATCHES (2).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench-results/distribution-cost-$(date +%Y%m%d-%H%M%S)}
shift || true
model=${MODEL:-/tmp/small}
rates=${RATES:-0.25,0.5,1,2,inf}
mkdir -p "$out"
[ -f "$model/config.json" ] || ./epserve make-checkpoint --preset small --seed 1 --out "$model"

pids=()
stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
trap stop EXIT

# Waits for the line of `up` that lists the /metrics URLs and prints them comma-separated.
metrics_urls() {
  local log=$1
  for _ in $(seq 1 180); do
    if grep -q "epserve up: metrics at" "$log"; then
      grep "epserve up: metrics at" "$log" | grep -o 'http://[^ ,]*' | paste -sd, -
      return 0
    fi
    sleep 1
  done
  echo "no metrics line in $log" >&2
  return 1
}

sweep() {
  local label=$1 port=$2 urls=$3
  shift 3
  ./epserve bench --target "127.0.0.1:$port" --label "$label" --dataset-name random \
      --random-input-len "${IN_LEN:-32}" --random-output-len "${OUT_LEN:-32}" --ignore-eos \
      --num-prompts "${PROMPTS:-32}" --num-warmups 2 --seed 1 --sweep --request-rate "$rates" \
      --metrics-url "$urls" --save-result --result-dir "$out" --result-filename "$label.json" "$@"
}

./epserve up --model "$model" --metrics --port 50071 --expert-workers "${EXPERT_WORKERS:-2}" \
    --attention-workers "${ATTENTION_WORKERS:-1}" --micro-batches "${MICRO_BATCHES:-2}" \
    --log-dir "$out/cluster-logs" > "$out/cluster-up.log" 2>&1 &
pids+=($!)
sweep cluster 50071 "$(metrics_urls "$out/cluster-up.log")" "$@" | tee "$out/cluster.txt"
stop

./epserve up --single-process --model "$model" --metrics --port 50072 > "$out/single-up.log" 2>&1 &
pids+=($!)
sweep single-process 50072 "$(metrics_urls "$out/single-up.log")" "$@" | tee "$out/single-process.txt"
stop

./epserve bench-compare "$out/single-process.json" "$out/cluster.json" --html "$out/compare.html" \
    --json "$out/compare.json" | tee "$out/compare.txt"

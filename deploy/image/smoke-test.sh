#!/usr/bin/env bash
# Runs the image built by Jib without any container runtime: unpacks its layers into a root filesystem and runs its
# entrypoint there (chroot as the image's user, in a private mount namespace with /proc, /dev, a tmpfs /dev/shm and
# a read-only /model), with the host's network. Needs root (unshare, mount, chroot) and python3 (to read the
# image config).
#
#   deploy/image/smoke-test.sh [IMAGE_TAR]            # default cli/target/jib-image.tar
#
# Checks, all inside the image: `epserve --version`; `epserve env`; `make-checkpoint --preset tiny` into /model; a
# cluster on 127.0.0.1 configured through EPSERVE_* variables as the Kubernetes manifests do (an expert worker with
# --health-port, an attention worker, a router), a generation through the router (the tokenizer's native library
# loads against the image's libstdc++), the metrics endpoint, a second expert worker that joins and takes experts,
# and SIGTERM to it: it drains and exits 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAR="${1:-$ROOT/cli/target/jib-image.tar}"
WORK="$ROOT/deploy/image/target/smoke"
[ -f "$TAR" ] || { echo "smoke-test.sh: no image at $TAR (./mvnw -B -Pimage -pl cli -am -DskipTests package)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "smoke-test.sh: needs root (unshare, mount, chroot)" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK/image" "$WORK/root" "$WORK/model" "$WORK/logs"
tar -xf "$TAR" -C "$WORK/image"
CFG="$WORK/image/config.json"
json() { python3 -c "import json,sys; c=json.load(open('$CFG')); v=eval(sys.argv[1]); print('\n'.join(v) if isinstance(v, list) else v)" "$1"; }
for layer in $(python3 -c "import json; print(' '.join(json.load(open('$WORK/image/manifest.json'))[0]['Layers']))"); do
  tar --warning=no-unknown-keyword --numeric-owner -xpf "$WORK/image/$layer" -C "$WORK/root"
done
mapfile -t ENTRY < <(json "c['config']['Entrypoint']")
mapfile -t ENV < <(json "c['config']['Env']")
USER_SPEC=$(json "c['config']['User']")
cp /etc/hosts /etc/resolv.conf "$WORK/root/etc/" 2>/dev/null || true
chmod 777 "$WORK/model"

# in_image [VAR=value...] -- ARGS: the entrypoint with ARGS, inside the image. It execs (the process becomes the
# JVM, so `in_image ... &` gives the JVM's pid to signal); call it in a subshell in the foreground.
in_image() {
  local extra=()
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
  exec unshare --mount --propagation private -- bash -c '
    R=$1; M=$2; u=$3; shift 3
    mkdir -p "$R/proc" "$R/dev" "$R/model"
    mount --rbind /proc "$R/proc"
    mount --rbind /dev "$R/dev"
    mount -t tmpfs -o size=512m tmpfs "$R/dev/shm"
    mount --bind "$M" "$R/model"
    exec chroot --userspec="$u" "$R" "$@"' _ "$WORK/root" "$WORK/model" "$USER_SPEC" \
    env -i "${ENV[@]}" JDK_JAVA_OPTIONS=-Xmx768m "${extra[@]}" "${ENTRY[@]}" "$@"
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

await() {  # await FILE PATTERN SECONDS
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "smoke-test.sh: timed out waiting for '$2' in $1:" >&2
  tail -n 20 "$1" >&2
  exit 1
}

echo "== version";  (in_image -- --version)
echo "== env";      (in_image -- env 2>/dev/null)
echo "== model";    (in_image -- make-checkpoint --preset tiny --seed 1 --out /model 2>/dev/null) | tail -n 1

BASE=$((30000 + RANDOM % 20000))
COMMON=(EPSERVE_MODEL=/model "EPSERVE_CLUSTER_MEMBERS=127.0.0.1:$BASE-$((BASE + 3))" "EPSERVE_CLUSTER_PORT=$BASE"
        "EPSERVE_CLUSTER_NAME=smoke-$BASE" EPSERVE_CLUSTER_HOST=127.0.0.1 EPSERVE_METRICS_HOST=127.0.0.1)
L="$WORK/logs"
in_image "${COMMON[@]}" EPSERVE_WORKER_ID=0 "EPSERVE_METRICS_PORT=$((BASE + 10))" -- expert-worker \
  --listen "127.0.0.1:$((BASE + 20))" --health-port "$((BASE + 30))" > "$L/expert-0.log" 2>&1 &
pids+=($!)
await "$L/expert-0.log" "expert-worker 0 ready" 120
in_image "${COMMON[@]}" EPSERVE_WORKER_ID=0 -- attention-worker --listen "127.0.0.1:$((BASE + 21))" \
  --host 127.0.0.1 --port "$((BASE + 40))" --advertise-host 127.0.0.1 > "$L/attention-0.log" 2>&1 &
pids+=($!)
await "$L/attention-0.log" "attention-worker 0 ready" 180
in_image "${COMMON[@]}" -- router --host 127.0.0.1 --port "$((BASE + 41))" --advertise-host 127.0.0.1 \
  --metrics-port "$((BASE + 11))" > "$L/router.log" 2>&1 &
pids+=($!)
await "$L/router.log" "router ready" 120
await "$L/router.log" "attention worker 127.0.0.1:$((BASE + 40)) joined" 60
grep -h " ready" "$L/expert-0.log" "$L/attention-0.log" "$L/router.log" | cut -c1-160

echo "== generate through the router"
(in_image -- generate --target "127.0.0.1:$((BASE + 41))" --prompt "Hello" --max-tokens 8 2>&1) | tail -n 1
echo "== metrics of expert worker 0"
if [ -x "$WORK/root/bin/busybox" ]; then
  chroot --userspec="$USER_SPEC" "$WORK/root" /bin/busybox wget -q -O - "http://127.0.0.1:$((BASE + 10))/metrics"
else
  curl -s "http://127.0.0.1:$((BASE + 10))/metrics"
fi | grep -E '^epserve_(build_info|expert_exchanges_total)'

echo "== scale up: expert worker 1 joins"
in_image "${COMMON[@]}" EPSERVE_WORKER_ID=1 EPSERVE_DRAIN_TIMEOUT_MS=90000 -- expert-worker \
  --listen "127.0.0.1:$((BASE + 22))" > "$L/expert-1.log" 2>&1 &
EW1=$!
pids+=($EW1)
await "$L/expert-1.log" "expert-worker 1: now holds" 120
(in_image -- admin --router "127.0.0.1:$((BASE + 41))" placement 2>/dev/null) | head -n 3
# An attention worker switches tables between steps: traffic moves it to the new epoch (and to worker 1).
(in_image -- generate --target "127.0.0.1:$((BASE + 41))" --prompt "Hello again" --max-tokens 8 2>&1) | tail -n 1
echo "== scale down: SIGTERM to expert worker 1 (while a request runs)"
t0=$(date +%s)
kill -TERM "$EW1"
(in_image -- generate --target "127.0.0.1:$((BASE + 41))" --prompt "Hello once more" --max-tokens 8 2>&1) | tail -n 1
code=0
wait "$EW1" || code=$?
echo "expert worker 1 stopped $(($(date +%s) - t0)) s after SIGTERM"
grep -E "draining|drained|stopped" "$L/expert-1.log" | cut -c1-160 || true
echo "expert worker 1 exit code: $code"
[ "$code" = 0 ]
(in_image -- admin --router "127.0.0.1:$((BASE + 41))" placement 2>/dev/null) | head -n 2
echo "smoke test passed"

#!/usr/bin/env bash
# Provides a Docker engine for the container tests (integration-tests' ContainerClusterIT) where this machine can:
# as root on Debian, Debian's docker.io started by hand with no bridge and no iptables rules (containers use the host
# network only; nothing gets a private bridge address). Bounded in time; `stop` stops only what `start` started.
#
#   source deploy/ci/docker-engine.sh; docker_engine_start; ...; docker_engine_stop
#
# Without root, apt or a working dockerd it says why and returns 1: the container tests then skip.

EPSERVE_DOCKERD_PID=""

docker_engine_start() {
  # dockerd lives in sbin, which a minimal PATH may lack.
  export PATH="$PATH:/usr/sbin:/sbin"
  # No reaper image can be pulled, and a machine that looks like a container (/.dockerenv) would make
  # Testcontainers look for the bridge network; the tests stop their containers and use the host network.
  # Its start-up checks run an alpine container: with no registry the pull retried for ~4 minutes before the
  # first test container started.
  export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=localhost TESTCONTAINERS_CHECKS_DISABLE=true
  if command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
    echo "docker engine: using the running one"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "docker engine: none running and not root: the container tests will skip"
    return 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "docker engine: no dockerd and no apt-get: the container tests will skip"
      return 1
    fi
    echo "docker engine: installing Debian's docker.io (bounded to 5 minutes)"
    # Package lists may be missing or stale on a fresh machine: refresh them once if the install fails.
    if ! DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y --no-install-recommends docker.io \
          >/tmp/epserve-docker-apt.log 2>&1 \
        && ! { timeout 120 apt-get update >>/tmp/epserve-docker-apt.log 2>&1 \
          && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y --no-install-recommends docker.io \
            >>/tmp/epserve-docker-apt.log 2>&1; }; then
      echo "docker engine: apt-get install docker.io failed (see /tmp/epserve-docker-apt.log): the container tests will skip"
      return 1
    fi
  fi
  dockerd --bridge=none --iptables=false --ip-masq=false --pidfile /run/epserve-dockerd.pid \
    >/tmp/epserve-dockerd.log 2>&1 &
  EPSERVE_DOCKERD_PID=$!
  for _ in $(seq 1 60); do
    if timeout 5 docker info >/dev/null 2>&1; then
      echo "docker engine: dockerd $EPSERVE_DOCKERD_PID started (no bridge, no iptables)"
      return 0
    fi
    if ! kill -0 "$EPSERVE_DOCKERD_PID" 2>/dev/null; then
      break
    fi
    sleep 0.5
  done
  echo "docker engine: dockerd did not come up (see /tmp/epserve-dockerd.log): the container tests will skip"
  docker_engine_stop
  return 1
}

docker_engine_stop() {
  if [ -n "$EPSERVE_DOCKERD_PID" ]; then
    kill "$EPSERVE_DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 40); do
      kill -0 "$EPSERVE_DOCKERD_PID" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 "$EPSERVE_DOCKERD_PID" 2>/dev/null
    EPSERVE_DOCKERD_PID=""
    echo "docker engine: stopped"
  fi
}

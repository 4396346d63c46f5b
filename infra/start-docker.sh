#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine (the Docker target tests need one).
#
# Nothing to do when `docker info` works. Otherwise install the distribution's engine
# (docker.io) if dockerd is missing, and start it in the background with host networking
# only: no bridge network, no iptables rules. Its log goes to $REDIS_DR_DOCKERD_LOG.
set -euo pipefail

log="${REDIS_DR_DOCKERD_LOG:-/tmp/redis-dr-dockerd.log}"
wait_seconds="${REDIS_DR_DOCKERD_WAIT:-60}"

engine_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

engine_answers && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "redis-dr: error: starting a Docker engine needs root: run infra/start-docker.sh as root, or start dockerd yourself" >&2
        exit 1
    fi
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "redis-dr: installing the Docker engine (docker.io)" >&2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "redis-dr: error: no apt-get here: install a Docker engine with your package manager" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

echo "redis-dr: starting dockerd (host networking only; log: $log)" >&2
# setsid: the engine outlives this script and is not in its process group.
$sudo setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$log" 2>&1 </dev/null &
pid=$!

deadline=$((SECONDS + wait_seconds))
until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "redis-dr: error: dockerd exited at start; the end of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "redis-dr: error: dockerd did not answer within ${wait_seconds}s; the end of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "redis-dr: Docker engine $(docker version --format '{{.Server.Version}}') is up" >&2

#!/usr/bin/env bash
# Install what redis-dr needs from the distribution: redis-server, redis-check-rdb, redis-cli.
set -euo pipefail

missing=()
for binary in redis-server redis-check-rdb redis-cli; do
    command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/bin/$binary" ] || missing+=("$binary")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "redis-dr: installing redis-server and redis-tools (missing: ${missing[*]})" >&2
if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-dr: error: no apt-get here: install redis-server and redis-tools (Redis >= 6) with your package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "redis-dr: error: installing redis-server needs root: run 'apt-get install redis-server redis-tools' as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
echo "redis-dr: installed $(redis-server --version | cut -d' ' -f1-3)" >&2

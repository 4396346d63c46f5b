#!/usr/bin/env bash
# Install what redis-dr needs from the distribution: redis-server, redis-check-rdb, redis-cli; and
# for its alert rules and their tests: prometheus, promtool and prometheus-pushgateway.
# Only the packages whose binaries are missing are installed.
set -euo pipefail

# binary -> the Debian package that has it
declare -A package_of=(
    [redis-server]=redis-server
    [redis-check-rdb]=redis-tools
    [redis-cli]=redis-tools
    [prometheus]=prometheus
    [promtool]=prometheus
    [prometheus-pushgateway]=prometheus-pushgateway
)

missing=()
packages=()
for binary in redis-server redis-check-rdb redis-cli prometheus promtool prometheus-pushgateway; do
    if command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/bin/$binary" ]; then continue; fi
    missing+=("$binary")
    package="${package_of[$binary]}"
    [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "redis-dr: installing ${packages[*]} (missing: ${missing[*]})" >&2
if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-dr: error: no apt-get here: install ${packages[*]} (Redis >= 6) with your package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "redis-dr: error: installing packages needs root: run 'apt-get install ${packages[*]}' as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
if [[ " ${packages[*]} " == *" redis-server "* ]]; then
    echo "redis-dr: installed $(redis-server --version | cut -d' ' -f1-3)" >&2
fi
for package in "${packages[@]}"; do
    case "$package" in
        prometheus) echo "redis-dr: installed $(prometheus --version 2>&1 | head -1)" >&2 ;;
        prometheus-pushgateway) echo "redis-dr: installed $(prometheus-pushgateway --version 2>&1 | head -1)" >&2 ;;
    esac
done

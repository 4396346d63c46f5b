#!/usr/bin/env bash
# Print the path of a uv binary, installing it into .tools/ from PyPI if the machine has none.
set -euo pipefail

if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
if [ -x .tools/bin/uv ]; then echo .tools/bin/uv; exit 0; fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "redis-dr: installing python3 and python3-venv" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
fi
python3 -m venv .tools >&2
.tools/bin/python -m pip install --quiet --disable-pip-version-check uv >&2
echo .tools/bin/uv

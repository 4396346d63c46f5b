# Two entry points for a fresh Debian/Ubuntu machine: `make demo` and `make test`.
# Each installs what it needs: uv (from PyPI), the locked Python environment in .venv/,
# and redis-server / redis-check-rdb from the distribution.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST_ARGS ?=
# Test files run in two processes (pytest-xdist; a file's tests stay together in one): most tests
# wait on servers, not on the CPU. PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2

.PHONY: help demo up down test lint unit bench bench-restore bench-drill deps system-deps clean

help:
	@echo "make demo   a whole disaster: back up a throwaway session store, break it, restore it, verify it"
	@echo "make up     a local stack: Prefect UI on 127.0.0.1:4200, a worker, a demo Redis, local storage"
	@echo "make down   stop the local stack (no process is left)"
	@echo "make test   lint, type-check and run every test against real servers"
	@echo "make bench  measure backups of ~100 MB and ~1 GB against the runbook pipeline"
	@echo "make bench-restore  measure restores of ~100 MB and ~1 GB against a bare load and the runbook"
	@echo "make bench-drill    RTO drill on the ~1 GB session store on a Docker target (goal: under 30 s)"

.venv/.synced: pyproject.toml uv.lock Makefile
	@UV="$$(infra/install-uv.sh)" && "$$UV" sync --frozen --quiet --compile-bytecode
	@touch $@

deps: .venv/.synced

system-deps:
	@infra/install-system-deps.sh

demo: deps system-deps
	.venv/bin/redis-dr demo

up: deps system-deps
	.venv/bin/python infra/local_stack.py up

down:
	@if [ -x .venv/bin/python ]; then .venv/bin/python infra/local_stack.py down; fi

lint: deps
	.venv/bin/ruff check .
	.venv/bin/mypy

# The 25 slowest steps, the time per test directory and the slowest files are printed at the end:
# keep them small.
test: deps system-deps lint
	.venv/bin/pytest --durations=25 -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: deps system-deps
	.venv/bin/python benchmarks/backup_bench.py --sizes 100MB,1GB

bench-restore: deps system-deps
	.venv/bin/python benchmarks/restore_bench.py --sizes 100MB,1GB

bench-drill: deps system-deps
	.venv/bin/python benchmarks/drill_bench.py --size 1GB

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache

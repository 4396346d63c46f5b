"""Drill benchmark: `redis-dr drill` on the ~1 GB session store in a Docker container, kill to verified.

    .venv/bin/python benchmarks/drill_bench.py --size 1GB --runs 1

Prepared once (not timed): a Redis container made as the Docker target tests make
theirs (tests/fixtures/docker_targets.py: an image `docker import`ed from this host's
redis binaries, host networking, a named volume at /data, uid 999, restart policy
unless-stopped), Redis's defaults except `save ""`; filled with the session store of
benchmarks/restore_bench.py (cli.demo_sessions, seed S) up to about that RDB size;
`redis-dr backup` of it into a file:// location (zstd); then 1,000 keys written after
the backup (the keys a drill must report lost).

Each run: `redis-dr drill --target docker://NAME --storage URL --instance bench
--strategy file --yes --json`; reported per phase from the flow's own clock (kill,
find, preflight, fetch = download + check + stage into the volume, place, load,
verify), the RTO (kill to a verified, writable server) against the goal of 30 s and
the runbooks' 5 minutes, the RPO and keys lost, and the whole command's wall time.
The load phase (our start of the container and our wait for `loading:0`) is set
beside the server's own figures from the container's log: its "DB loaded from disk"
time and, by the log's timestamps, its start to "Ready to accept connections".
A second run finds the first in the history (the trend).

Needs a Docker engine (infra/start-docker.sh). Everything binds 127.0.0.1; the
container, its volume and the scratch directory are removed at the end, also on
failure. Results: printed as markdown and written to
benchmarks/results/<date>-drill-<host>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from benchmarks.backup_bench import parse_size  # noqa: E402
from cli.demo_sessions import populate_session_store  # noqa: E402
from redis_dr.drill.measure import DRILL_PHASES  # noqa: E402
from redis_dr.sandbox.ports import free_port  # noqa: E402
from tests.fixtures.docker_targets import (  # noqa: E402
    CONFIG_PATH,
    REDIS_UID,
    build_test_image,
    config_text,
    put_file,
    wait_until_ready,
)

MB = 1_000_000
INSTANCE = "bench"
GOAL_SECONDS = 30.0
RUNBOOK_SECONDS = 300.0
LATE_KEYS = 1000
LABEL = "redis-dr.bench-drill"
SERVER_FIGURES = ("server_load", "server_start_to_ready")
_LOADED = re.compile(r"DB loaded from disk: ([0-9.]+) seconds")


def server_timing(container: Any, since: float) -> dict[str, float]:
    """The server's own load figures from the container's log since `since` (epoch seconds):
    `server_load` (its "DB loaded from disk" time) and `server_start_to_ready` (log timestamps)."""
    text = container.logs(since=int(since), timestamps=True).decode("utf-8", "replace")
    found: dict[str, float] = {}
    starting = None
    for line in text.splitlines():
        stamp, _, message = line.partition(" ")
        when = dt.datetime.fromisoformat(stamp[:26] + "+00:00").timestamp() if stamp[:4].isdigit() else None
        if "Redis is starting" in message:
            starting = when
        elif "Ready to accept connections" in message and starting is not None and when is not None:
            found["server_start_to_ready"] = when - starting
        elif (loaded := _LOADED.search(message)) is not None:
            found["server_load"] = float(loaded[1])
    return found


def start_container(client: Any, image: str, name: str) -> tuple[Any, Any, int]:
    """A Redis container with a named volume at /data, as the Docker target fixture makes it."""
    port = free_port()
    values = {"port": str(port), "bind": "127.0.0.1", "dir": "/data", "save": ""}
    volume = client.volumes.create(name=f"{name}-data", labels={LABEL: str(os.getpid())})
    container = client.containers.create(
        image, command=["redis-server", CONFIG_PATH], name=name, user=f"{REDIS_UID}:{REDIS_UID}",
        network_mode="host", volumes={volume.name: {"bind": "/data", "mode": "rw"}},
        restart_policy={"Name": "unless-stopped"}, labels={LABEL: str(os.getpid())},
    )  # fmt: skip
    put_file(container, CONFIG_PATH, config_text(values).encode())
    container.start()
    wait_until_ready(port, None, container)
    return container, volume, port


def run(argv: list[str], timeout: float) -> tuple[int, str, str, float]:
    """Run a command; exit code, stdout, stderr, wall seconds."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - started


def report(meta: dict[str, Any], runs: list[dict[str, Any]], notes: list[str]) -> str:
    """The results as markdown."""
    lines = [f"# Drill benchmark, {meta['date']}", ""]
    lines += [f"{meta['machine']}; {meta['redis']}; code {meta['code']}", ""]
    lines += [f"- {note}" for note in notes] + [""]
    phases = [p for p in DRILL_PHASES if any(p in r["phases"] for r in runs)]
    header = ["run", *phases, "RTO", "vs 30 s goal", "vs 5 min runbook", "RPO", "keys lost", "command"]
    header += ["server's own load", "server start to ready"]
    header.append("result")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for number, r in enumerate(runs, start=1):
        rto = r.get("rto_seconds")
        server = r.get("server", {})
        cells = [str(number), *(f"{r['phases'].get(p, 0):.2f}" for p in phases)]
        cells += [
            f"**{rto:.2f} s**" if rto else "-",
            ("within" if rto <= GOAL_SECONDS else "OVER") + f" ({rto / GOAL_SECONDS:.2f}x)" if rto else "-",
            f"{rto / RUNBOOK_SECONDS:.1%} of it" if rto else "-",
            f"{r['rpo']:.0f} s" if r.get("rpo") is not None else "-",
            str(r.get("keys_lost", "-")),
            f"{r['wall']:.1f} s",
            *(f"{server[key]:.2f} s" if key in server else "-" for key in SERVER_FIGURES),
            r["result"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def code_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()  # fmt: skip
        return out or "unknown"
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", default="1GB", help="RDB size of the session store (default 1GB)")
    parser.add_argument("--runs", type=int, default=2, help="drills in a row (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900, help="per command, seconds")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    redis_dr = str(Path(sys.executable).with_name("redis-dr"))
    client = docker.from_env(timeout=300)
    client.ping()
    work = Path(tempfile.mkdtemp(prefix="redis-dr-drill-bench-"))
    name = f"redis-dr-bench-{uuid.uuid4().hex[:8]}"
    container = volume = None
    notes: list[str] = []
    runs: list[dict[str, Any]] = []
    try:
        image = build_test_image(client)
        container, volume, port = start_container(client, image, name)
        import redis

        server = redis.Redis(host="127.0.0.1", port=port, socket_timeout=300)
        started = time.perf_counter()
        summary = populate_session_store(server, target_rdb_bytes=size, seed=args.seed)
        notes.append(f"session store: {summary.total_keys:,} keys ({summary.sessions:,} sessions), "
                     f"filled in {time.perf_counter() - started:.0f} s, used_memory "
                     f"{server.info('memory')['used_memory'] / MB:.0f} MB")  # fmt: skip
        storage = (work / "backups").as_uri()
        code, out, err, wall = run([redis_dr, "backup", "--redis-url", f"redis://127.0.0.1:{port}/0",
                                    "--storage", storage, "--instance", INSTANCE], args.timeout)  # fmt: skip
        if code != 0:
            raise RuntimeError(f"redis-dr backup exited {code}: {err.strip()[-800:]}")
        notes.append(f"backup {out.strip().splitlines()[-1]} (zstd, file://) in {wall:.1f} s")
        for number in range(1, args.runs + 1):
            server.mset({f"late:{number}:{i}": i for i in range(LATE_KEYS)})
            command = [redis_dr, "drill", "--target", f"docker://{name}", "--storage", storage,
                       "--instance", INSTANCE, "--yes", "--json"]  # fmt: skip
            since = time.time() - 1
            code, out, err, wall = run(command, args.timeout)
            outcome = json.loads(out) if out.strip().startswith("{") else {}
            point = outcome.get("recovery_point") or {}
            last = err.strip().splitlines()[-1:]
            lost = sum((point.get("keys_lost") or {}).values())
            runs.append({
                "phases": outcome.get("phases", {}), "rto_seconds": outcome.get("rto_seconds"),
                "rpo": point.get("backup_age_seconds"), "keys_lost": lost,
                "wall": wall, "result": "pass" if code == 0 else f"exit {code}: {last}",
                "trend": (outcome.get("trend") or {}), "server": server_timing(container, since),
            })  # fmt: skip
            rto = outcome.get("rto_seconds")
            print(f"run {number}: exit {code}, RTO {rto}, wall {wall:.1f} s", flush=True)
        meta = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{socket.gethostname()}, {os.cpu_count()} cores",
            "redis": subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True, check=False
            ).stdout.split(" sha=")[0].strip(),
            "code": code_version(),
            "host": re.sub(r"[^a-zA-Z0-9-]", "-", socket.gethostname())[:24] or "host",
        }
        text = report(meta, runs, notes)
        print(text)
        results = REPO / "benchmarks" / "results"
        path = results / f"{dt.datetime.now(dt.UTC):%Y-%m-%d-%H%M}-drill-{meta['host']}.md"
        path.write_text(text)
        raw = {"meta": meta, "notes": notes, "runs": runs}
        path.with_suffix(".json").write_text(json.dumps(raw, indent=2))
        print(f"written to {path}")
        return 0 if all(r["result"] == "pass" for r in runs) else 1
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        if volume is not None:
            with contextlib.suppress(Exception):
                volume.remove(force=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Replay benchmark: a backup's keys written into a live server, beside `redis-cli --pipe`'s ceiling.

    .venv/bin/python benchmarks/replay_bench.py --size 300MB --runs 3

Builds a session store (cli.demo_sessions) of about that RDB size in a scratch
redis-server, saves it, and then, per run (median reported):

  load     load_throwaway() of the RDB file: write it to a fresh directory, start a
           redis-server on it, wait for loading:0 (MB/s of RDB)
  replay   replay_keys() from that throwaway into another local redis-server
           (MB/s of RDB, keys/s, CPU seconds of each process, peak RSS of this
           process during the replay and its RSS before it)
  pipe     the same keys as a file of `RESTORE key abs-ttl payload REPLACE ABSTTL`
           commands, made once from the throwaway, fed to `redis-cli --pipe` into a
           fresh server: the write side's ceiling

MB = 10^6 bytes. Everything binds 127.0.0.1; servers and scratch files are removed
on exit. Results: printed as markdown and written to
benchmarks/results/<date>-replay-<host>.md and .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cli.demo_sessions import populate_session_store  # noqa: E402
from redis_dr.redis.connection import RedisEndpoint  # noqa: E402
from redis_dr.restore.replay import ReplayOptions, replay_keys  # noqa: E402
from redis_dr.restore.replay_source import DumpBatches, raw_connection  # noqa: E402
from redis_dr.restore.throwaway import Throwaway, load_throwaway  # noqa: E402
from redis_dr.sandbox.redis_server import RedisServer, find_redis_binary  # noqa: E402

MB = 1_000_000
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_size(text: str) -> int:
    units = {"GB": 10**9, "MB": 10**6, "KB": 10**3}
    for suffix, factor in units.items():
        if text.upper().endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


class PeakRss:
    """Sample this process's RSS every 20 ms while active."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(size):
            yield chunk


def build_dataset(size: int, seed: int, work: Path) -> tuple[Path, int]:
    """A session store of about `size` RDB bytes, saved to work/source.rdb; (path, keys)."""
    with RedisServer() as server:
        summary = populate_session_store(server.client(), target_rdb_bytes=size, seed=seed)
        server.client().save()
        path = work / "source.rdb"
        shutil.copy(server.data_dir / "dump.rdb", path)
    return path, summary.total_keys


def write_restore_file(throwaway: Throwaway, path: Path) -> tuple[int, int]:
    """Every key of db 0 as RESTORE ... REPLACE ABSTTL commands in `path`; (commands, bytes)."""
    client = throwaway.client()
    scan_conn, dump_conn = raw_connection(client, 60), raw_connection(client, 60)
    commands = 0
    try:
        reader = DumpBatches(
            scan_conn,
            dump_conn,
            where="(bench)",
            replace=True,
            match=None,
            batch_keys=1000,
            batch_bytes=1 << 20,
        )
        with path.open("wb") as out:
            for batch in reader.batches(0):
                out.write(batch.blob)
                commands += batch.commands
    finally:
        scan_conn.disconnect()
        dump_conn.disconnect()
    return commands, path.stat().st_size


def run_replay(throwaway: Throwaway, rdb_bytes: int) -> dict[str, Any]:
    with RedisServer() as target:
        pids = {"throwaway": throwaway.server._process.pid, "target": target._process.pid}  # type: ignore[union-attr]
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own = os.times()
        with PeakRss() as rss:
            baseline = rss.peak
            started = time.monotonic()
            result = replay_keys(
                throwaway.client(), RedisEndpoint.from_url(target.url, env={}), ReplayOptions()
            )
            seconds = time.monotonic() - started
        after = os.times()
        cpu = {name: round(cpu_seconds(pid) - before[name], 2) for name, pid in pids.items()}
        cpu["replay process"] = round(after.user - own.user + after.system - own.system, 2)
        assert target.client().dbsize() == result.written
    return {
        "seconds": round(seconds, 3),
        "mb_per_s": round(rdb_bytes / seconds / MB, 1),
        "keys_per_s": round(result.written / seconds),
        "keys": result.written,
        "expired": sum(d.expired for d in result.databases.values()),
        "payload_mb": round(result.payload_bytes / MB, 1),
        "cpu_seconds": cpu,
        "rss_before_mb": round(baseline / MB, 1),
        "rss_peak_mb": round(rss.peak / MB, 1),
    }


def run_pipe(restore_file: Path, rdb_bytes: int, commands: int) -> dict[str, Any]:
    cli = find_redis_binary("redis-cli")
    with RedisServer() as target, restore_file.open("rb") as stdin:
        started = time.monotonic()
        done = subprocess.run(
            [cli, "-p", str(target.port), "--pipe"], stdin=stdin, capture_output=True, text=True, check=False
        )
        seconds = time.monotonic() - started
        if done.returncode != 0 or "errors: 0" not in done.stdout:
            raise RuntimeError(f"redis-cli --pipe failed: {done.stdout[-300:]} {done.stderr[-300:]}")
    return {
        "seconds": round(seconds, 3),
        "mb_per_s": round(rdb_bytes / seconds / MB, 1),
        "keys_per_s": round(commands / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="300MB", help="RDB size of the session store (default 300MB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch space (about 3x the size)")
    parser.add_argument("--no-save", action="store_true", help="print only, write no result files")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="replay-bench-", dir=args.work_dir))
    try:
        rdb, keys = build_dataset(parse_size(args.size), args.seed, work)
        rdb_bytes = rdb.stat().st_size
        print(f"dataset: {rdb_bytes / MB:.0f} MB RDB, {keys} keys", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"load": [], "replay": [], "pipe": []}
        restore_file = work / "restore.resp"
        for run in range(args.runs):
            started = time.monotonic()
            with load_throwaway(file_chunks(rdb), work_dir=work) as throwaway:
                load_seconds = time.monotonic() - started
                runs["load"].append(
                    {
                        "seconds": round(load_seconds, 3),
                        "mb_per_s": round(rdb_bytes / load_seconds / MB, 1),
                        "keys_loaded": throwaway.load.keys_loaded,
                        "keys_expired": throwaway.load.keys_expired,
                    }
                )
                if run == 0:
                    commands, resp_bytes = write_restore_file(throwaway, restore_file)
                    print(f"RESTORE file: {commands} commands, {resp_bytes / MB:.0f} MB", flush=True)
                runs["replay"].append(run_replay(throwaway, rdb_bytes))
            runs["pipe"].append(run_pipe(restore_file, rdb_bytes, commands))
            print(f"run {run + 1}: " + json.dumps({k: v[-1] for k, v in runs.items()}), flush=True)
        report(runs, rdb_bytes, keys, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(
    runs: dict[str, list[dict[str, Any]]], rdb_bytes: int, keys: int, args: argparse.Namespace
) -> None:
    replay = runs["replay"]
    lines = [
        f"# Replay benchmark, {rdb_bytes / MB:.0f} MB RDB session store ({keys} keys), "
        f"{len(replay)} runs, median",
        "",
        f"Host: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        "| stage | seconds | MB/s of RDB | keys/s |",
        "|---|---|---|---|",
        f"| load into throwaway | {median(runs['load'], 'seconds')} | {median(runs['load'], 'mb_per_s')} | |",
        f"| replay_keys into a local server | {median(replay, 'seconds')} | {median(replay, 'mb_per_s')} "
        f"| {median(replay, 'keys_per_s'):.0f} |",
        f"| redis-cli --pipe of RESTORE commands (ceiling) | {median(runs['pipe'], 'seconds')} "
        f"| {median(runs['pipe'], 'mb_per_s')} | {median(runs['pipe'], 'keys_per_s'):.0f} |",
        "",
        f"Replay process RSS: {median(replay, 'rss_before_mb')} MB before, "
        f"{median(replay, 'rss_peak_mb')} MB peak during the replay.",
        "CPU seconds per replay: "
        + ", ".join(f"{k} {v}" for k, v in replay[len(replay) // 2]["cpu_seconds"].items()),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_save:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M")
        base = REPO / "benchmarks" / "results" / f"{stamp}-replay-{platform.node()}"
        base.with_suffix(".md").write_text(text + "\n")
        base.with_suffix(".json").write_text(
            json.dumps({"rdb_bytes": rdb_bytes, "keys": keys, **runs}, indent=1)
        )


if __name__ == "__main__":
    main()

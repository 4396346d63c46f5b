"""How fast the streaming RDB scanner counts a realistic session store, in one core of Python.

    .venv/bin/python benchmarks/rdb_scan_bench.py [--size 100MB] [--runs 5] [--chunk 131072]
    .venv/bin/python benchmarks/rdb_scan_bench.py --rdb path/to/dump.rdb

Fills a throwaway redis-server (default settings: `rdbcompression yes`) with
`cli.demo_sessions.populate_session_store` up to `--size` of RDB (or, with
`--shape`, a worst case: tiny string keys, or hash-table hashes whose fields the
scanner reads one by one), saves it, reads
dump.rdb into memory, then times `RdbCounter` over it in `--chunk` pieces (the
backup data path's chunk size) and, for scale, hashlib.sha256 over the same
chunks. Prints MB/s (10^6 bytes) and keys/s for the median run; the counts are
checked against the server's INFO keyspace.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli.demo_sessions import populate_session_store
from redis_dr.redis.info import KeyspaceStats, read_server_facts
from redis_dr.redis.rdb_scan import RdbCounter
from redis_dr.sandbox.redis_server import RedisServer

TARGET_MB_S = 150


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    for suffix, factor in units.items():
        if text.upper().endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def make_dump(size: int, seed: int, shape: str, work: Path) -> tuple[bytes, dict[int, KeyspaceStats]]:
    """A saved dataset of about `size` bytes of RDB, and what INFO says it holds."""
    with RedisServer({"enable-debug-command": "yes"}, data_dir=work / "redis") as server:
        started = time.perf_counter()
        client = server.client()
        if shape == "sessions":
            populate_session_store(client, target_rdb_bytes=size, seed=seed)
        elif shape == "small-keys":  # worst case per byte: ~30-byte entries, one key each
            client.execute_command("DEBUG", "POPULATE", size // 30, "key", 8)  # type: ignore[no-untyped-call]
        else:  # "big-hashes": hash-table hashes of 10,000 small fields each, read field by field
            for n in range(max(1, size // 300_000)):
                client.hset(f"hash:{n}", mapping={f"field:{i}": f"value:{i}:{n}" for i in range(10_000)})
        server.client().save()
        print(f"filled and saved in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        keyspace = read_server_facts(server.client()).keyspace
        return (server.data_dir / "dump.rdb").read_bytes(), keyspace


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])  # the data path hands the taps bytes


def time_runs(runs: int, work: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="100MB", help="RDB size to generate (default 100MB)")
    parser.add_argument("--rdb", type=Path, help="scan this dump instead of generating one")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=128 << 10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shape", choices=["sessions", "small-keys", "big-hashes"], default="sessions")
    args = parser.parse_args()

    expected: dict[int, KeyspaceStats] | None = None
    if args.rdb:
        data = args.rdb.read_bytes()
    else:
        with tempfile.TemporaryDirectory(prefix="rdb-scan-bench-") as work:
            data, expected = make_dump(parse_size(args.size), args.seed, args.shape, Path(work))
    chunks = list(chunks_of(data, args.chunk))  # cut once: time the scanner, not the slicing

    result: dict[str, RdbCounter] = {}

    def scan() -> None:
        counter = RdbCounter()
        for _ in counter.tap(chunks):
            pass
        result["counter"] = counter

    def sha256() -> None:
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)

    def passthrough() -> None:
        for _ in iter(chunks):
            pass

    scan_times = time_runs(args.runs, scan)
    sha_times = time_runs(args.runs, sha256)
    base_times = time_runs(args.runs, passthrough)
    counter = result["counter"]
    counts = counter.counts()
    if counts is None:
        print(f"scan did not complete: {counter.unknown_reason}", file=sys.stderr)
        return 1
    if expected is not None and counts != expected:
        print(f"counts differ from INFO: {counts} != {expected}", file=sys.stderr)
        return 1
    keys = sum(stats.key_count for stats in counts.values())
    median = statistics.median(scan_times)
    mb = len(data) / 1e6
    print(f"RDB: {mb:.1f} MB, version {counter.rdb_version}, {keys:,} keys, {args.chunk} B chunks")
    print(
        f"counts: { {db: s.model_dump() for db, s in counts.items()} } (INFO agrees: {expected is not None})"
    )
    print("| stage | median s | MB/s | keys/s |")
    print("|---|---|---|---|")
    print(f"| RdbCounter.tap | {median:.3f} | {mb / median:.0f} | {keys / median:,.0f} |")
    sha = statistics.median(sha_times)
    print(f"| hashlib.sha256 (for scale) | {sha:.3f} | {mb / sha:.0f} | |")
    print(f"| iterating the chunks only | {statistics.median(base_times):.4f} | | |")
    print(f"runs (s): {', '.join(f'{t:.3f}' for t in scan_times)}; target {TARGET_MB_S} MB/s:", end=" ")
    print("met" if mb / median >= TARGET_MB_S else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Backup benchmark: the runbooks' pipeline against `redis-dr backup`, side by side.

    .venv/bin/python benchmarks/backup_bench.py --sizes 100MB,1GB

For each dataset size: a redis-server with default settings (only `save ""`),
filled with a realistic session store to that RDB size, and a SeaweedFS S3
server. Then, alternating, each case N times (median reported):

  runbook-local  redis-cli --rdb FILE; gzip FILE; cp FILE.gz backups/
  runbook-s3     the same, then upload FILE.gz to S3 (boto3 upload_file in its
                 own process, standing in for `aws s3 cp`)
  redis-dr-local redis-dr backup --storage file:///DIR
  redis-dr-s3    redis-dr backup --storage s3://bench/redis-dr?endpoint=...

Wall time is process start to exit (for the runbook: the sum of its steps).
MB/s is the raw (uncompressed) RDB size / wall, MB = 10^6 bytes. Peak RSS is
sampled over the whole process tree (sum of RSS of the process and its
descendants, every 100 ms), and reported next to the kernel's ru_maxrss (the
largest single process). For redis-dr the manifest's `duration_seconds` is the
"data path" time. Also measures the raw stage rates (`redis-cli --rdb`, `gzip
-6`, `zstd -1 -T2`) on the largest dataset.

Everything binds 127.0.0.1; all processes and temp dirs are removed on exit.
Secrets go through the environment only, never argv. Results are printed as
markdown and written to benchmarks/results/<date>-<host>.md and .json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cli.demo_sessions import populate_session_store  # noqa: E402
from redis_dr.sandbox.redis_server import RedisServer  # noqa: E402
from tests.servers.seaweedfs import SeaweedFS  # noqa: E402

MB = 1_000_000
BUCKET = "bench"
CASES = ("runbook-local", "runbook-s3", "redis-dr-local", "redis-dr-s3")
PAGE = os.sysconf("SC_PAGE_SIZE")
TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None

# Stands in for `aws s3 cp FILE s3://BUCKET/KEY`: credentials from the environment.
UPLOAD_SCRIPT = """
import sys, boto3
from botocore.config import Config
path, endpoint, bucket, key = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"},
                                request_checksum_calculation="when_required",
                                response_checksum_validation="when_required"))
s3.upload_file(path, bucket, key)
"""


# ---------------------------------------------------------------- measuring


@dataclass
class Measured:
    """One process (tree) run to completion."""

    argv: list[str]
    wall_s: float
    returncode: int
    peak_tree_rss: int  # bytes, sampled sum over the tree
    max_rss: int  # bytes, ru_maxrss of the largest single process
    stdout: str = ""
    stderr: str = ""


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces and parentheses.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _tree_rss(root: int) -> int:
    children = _children_map()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, ()))
    return total


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float,
    stdout_path: Path | None = None,
) -> Measured:
    """Run argv in its own session; time it, sample its tree's RSS, kill it on timeout."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, after the child exits
    err = tempfile.TemporaryFile()  # noqa: SIM115
    # ru_maxrss of a child forked from this (large) Python process starts at our own
    # RSS; GNU time is tiny, so its figure for the command it runs is the real one.
    fd, maxrss_path = tempfile.mkstemp(prefix="bench-maxrss-")
    os.close(fd)
    wrapped = [TIME, "-q", "-f", "%M", "-o", maxrss_path, *argv] if TIME else argv
    start = time.perf_counter()
    proc = subprocess.Popen(
        wrapped,
        stdin=subprocess.DEVNULL,
        stdout=stdout_path.open("wb") if stdout_path else out,
        stderr=err,
        env=env,
        start_new_session=True,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(timeout, lambda: _kill_group(proc.pid))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        wall = time.perf_counter() - start
        timer.cancel()
        stop.set()
        sampler.join()
        _kill_group(proc.pid)  # leftovers of the tree, if any
    proc.returncode = os.waitstatus_to_exitcode(status)
    max_rss = usage.ru_maxrss * 1024
    try:
        max_rss = int(Path(maxrss_path).read_text().split()[-1]) * 1024
    except (ValueError, IndexError):
        pass  # no GNU time, or killed: keep the (overstated) wait4 figure
    finally:
        os.unlink(maxrss_path)
    with out, err:
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return Measured(
        argv=argv,
        wall_s=wall,
        returncode=proc.returncode,
        peak_tree_rss=peak,
        max_rss=max_rss,
        stdout=stdout.decode(errors="replace"),
        stderr=stderr.decode(errors="replace")[-4000:],
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------- cases


@dataclass
class Run:
    size: str
    case: str
    run: int
    ok: bool
    wall_s: float = 0.0
    raw_bytes: int = 0
    stored_bytes: int = 0
    peak_tree_rss: int = 0
    max_rss: int = 0
    data_path_s: float | None = None
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str = ""


@dataclass
class Bench:
    work: Path
    redis: RedisServer
    s3: SeaweedFS
    redis_dr: str
    timeout: float
    size: str

    def s3_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=self.s3.access_key,
            AWS_SECRET_ACCESS_KEY=self.s3.secret_key,
            AWS_DEFAULT_REGION="us-east-1",
        )
        return env

    def runbook(self, run: int, to_s3: bool) -> Run:
        case = "runbook-s3" if to_s3 else "runbook-local"
        result = Run(self.size, case, run, ok=False)
        stage = self.work / f"{case}-{run}"
        backups = self.work / f"{case}-{run}-backups"
        stage.mkdir()
        backups.mkdir()
        name = f"redis-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.rdb"
        rdb = stage / name  # fresh path every run: redis-cli --rdb never truncates
        gz = stage / (name + ".gz")
        steps: list[tuple[str, list[str], dict[str, str] | None]] = [
            ("redis-cli --rdb", ["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis.port),
                                 "--rdb", str(rdb)], None),
            ("gzip", ["gzip", str(rdb)], None),
            ("cp", ["cp", str(gz), str(backups / gz.name)], None),
        ]  # fmt: skip
        if to_s3:
            key = f"runbook/{gz.name}"
            steps.append(
                ("s3 upload", [sys.executable, "-c", UPLOAD_SCRIPT, str(gz), self.s3.endpoint,
                               BUCKET, key], self.s3_env()),
            )  # fmt: skip
        try:
            for label, argv, env in steps:
                if label == "gzip":
                    result.raw_bytes = rdb.stat().st_size
                m = run_measured(argv, env=env, timeout=self.timeout)
                result.steps[label] = {"wall_s": m.wall_s, "peak_tree_rss": m.peak_tree_rss}
                result.wall_s += m.wall_s
                result.peak_tree_rss = max(result.peak_tree_rss, m.peak_tree_rss)
                result.max_rss = max(result.max_rss, m.max_rss)
                if m.returncode != 0:
                    result.error = f"{label} exited {m.returncode}: {m.stderr.strip()[-500:]}"
                    return result
            result.stored_bytes = gz.stat().st_size
            result.ok = True
            return result
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            shutil.rmtree(backups, ignore_errors=True)

    def storage_url(self, to_s3: bool) -> str:
        if to_s3:
            return f"s3://{BUCKET}/redis-dr?endpoint={self.s3.endpoint}&region=us-east-1"
        return (self.work / "redis-dr-local").as_uri()

    def redis_dr_backup(self, run: int, to_s3: bool) -> Run:
        case = "redis-dr-s3" if to_s3 else "redis-dr-local"
        result = Run(self.size, case, run, ok=False)
        url = self.storage_url(to_s3)
        env = self.s3_env() if to_s3 else dict(os.environ)
        argv = [self.redis_dr, "backup", "--redis-url", self.redis.url, "--storage", url,
                "--instance", "bench"]  # fmt: skip
        m = run_measured(argv, env=env, timeout=self.timeout)
        result.wall_s, result.peak_tree_rss, result.max_rss = m.wall_s, m.peak_tree_rss, m.max_rss
        if m.returncode != 0:
            result.error = f"exited {m.returncode}: {m.stderr.strip()[-800:]}"
            return result
        lines = m.stdout.strip().splitlines()
        backup_id = lines[-1].strip() if lines else ""
        listed = subprocess.run(
            [self.redis_dr, "list", "--storage", url, "--instance", "bench", "--json"],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        try:
            manifests = json.loads(listed.stdout)
            manifest = next(
                (x for x in manifests if backup_id and backup_id in (x.get("id"), x.get("backup_id"))),
                manifests[0],
            )
            result.data_path_s = float(manifest["duration_seconds"])
            result.raw_bytes = int(manifest["raw_size"])
            result.stored_bytes = int(manifest["stored_size"])
            result.ok = True
        except (ValueError, LookupError, TypeError) as exc:
            result.error = (
                f"backup id {backup_id!r}: cannot read `redis-dr list --json` "
                f"({exc!r}; rc={listed.returncode}): {listed.stdout[:300]} {listed.stderr[-300:]}"
            )
        return result


# ---------------------------------------------------------------- stage rates


def stage_rates(bench: Bench) -> dict[str, dict[str, float]]:
    """One run each of the raw stages on this dataset."""
    rates: dict[str, dict[str, float]] = {}
    rdb = bench.work / "stage.rdb"
    m = run_measured(["redis-cli", "-h", "127.0.0.1", "-p", str(bench.redis.port), "--rdb", str(rdb)],
                     timeout=bench.timeout)  # fmt: skip
    raw = rdb.stat().st_size
    rates["redis-cli --rdb"] = {"wall_s": m.wall_s, "mb_s": raw / MB / m.wall_s, "out_bytes": raw}
    for label, argv in (
        ("gzip -6", ["gzip", "-6", "-c", str(rdb)]),
        ("zstd -1 -T2", ["zstd", "-1", "-T2", "-q", "-c", str(rdb)]),
    ):
        out = bench.work / "stage.out"
        m = run_measured(argv, timeout=bench.timeout, stdout_path=out)
        size = out.stat().st_size
        out.unlink()
        rates[label] = {"wall_s": m.wall_s, "mb_s": raw / MB / m.wall_s, "out_bytes": size,
                        "ratio": raw / size}  # fmt: skip
    rdb.unlink()
    rates["_raw_bytes"] = {"bytes": raw}
    return rates


# ---------------------------------------------------------------- reporting


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(KB|MB|GB)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 100MB or 1GB")
    unit = {"KB": 10**3, "MB": 10**6, "GB": 10**9}[(match.group(2) or "MB").upper()]
    return int(float(match.group(1)) * unit)


def summarize(runs: list[Run]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    sizes = list(dict.fromkeys(r.size for r in runs))
    keys = sorted({(r.size, r.case) for r in runs}, key=lambda k: (sizes.index(k[0]), CASES.index(k[1])))
    for key in keys:
        good = [r for r in runs if (r.size, r.case) == key and r.ok]
        failed = [r for r in runs if (r.size, r.case) == key and not r.ok]
        row: dict[str, Any] = {"runs": len(good), "failed": len(failed)}
        if failed:
            row["error"] = failed[-1].error
        if good:
            med = statistics.median
            row.update(
                raw_mb=med(r.raw_bytes for r in good) / MB,
                stored_mb=med(r.stored_bytes for r in good) / MB,
                wall_s=med(r.wall_s for r in good),
                mb_s=med(r.raw_bytes / MB / r.wall_s for r in good),
                peak_tree_rss_mb=med(r.peak_tree_rss for r in good) / MB,
                max_rss_mb=med(r.max_rss for r in good) / MB,
            )
            paths = [r for r in good if r.data_path_s]
            if paths:
                row["data_path_s"] = med(r.data_path_s or 0.0 for r in paths)
                row["data_path_mb_s"] = med(r.raw_bytes / MB / (r.data_path_s or 1.0) for r in paths)
            steps = sorted({s for r in good for s in r.steps})
            row["steps"] = {s: med(r.steps[s]["wall_s"] for r in good if s in r.steps) for s in steps}
        out[key] = row
    return out


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def report(
    meta: dict[str, Any],
    summary: dict[tuple[str, str], dict[str, Any]],
    stages: dict[str, dict[str, dict[str, float]]],
) -> str:
    lines = [
        f"# Backup benchmark, {meta['date']}",
        "",
        f"Machine: {meta['host']}, {meta['nproc']} cores ({meta['cpu']}), {meta['mem_gb']} GB RAM, "
        f"kernel {meta['kernel']}; {meta['redis_version']}; Python {meta['python']}.",
        f"Command: `{meta['command']}`; {meta['runs']} runs per case, alternating, median shown. "
        f"Server defaults (rdbcompression yes, repl-diskless-sync yes, "
        f'repl-diskless-sync-delay {meta["diskless_sync_delay"]}), save "".',
        "MB = 10^6 bytes; MB/s = raw RDB size / wall time. Peak RSS = sampled sum over the process "
        "tree; max RSS = ru_maxrss of the largest single process (runbook: max over its steps).",
        "",
        "| dataset | case | raw MB | stored MB | wall s | MB/s | data path s | data path MB/s "
        "| peak RSS tree MB | max RSS MB | runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (size, case), row in summary.items():
        if not row["runs"]:
            lines.append(f"| {size} | {case} | failed: {row.get('error', '')[:120]} |||||||||")
            continue
        failed = f" (+{row['failed']} failed)" if row["failed"] else ""
        lines.append(
            f"| {size} | {case} | {fmt(row['raw_mb'])} | {fmt(row['stored_mb'])} | "
            f"{fmt(row['wall_s'], 2)} | {fmt(row['mb_s'])} | {fmt(row.get('data_path_s'), 2)} | "
            f"{fmt(row.get('data_path_mb_s'))} | {fmt(row['peak_tree_rss_mb'])} | "
            f"{fmt(row['max_rss_mb'])} | {row['runs']}{failed} |"
        )
    lines += [
        "",
        "Runbook steps (median seconds):",
        "",
        "| dataset | case | step | s |",
        "|---|---|---|---:|",
    ]
    for (size, case), row in summary.items():
        for step, seconds in row.get("steps", {}).items():
            lines.append(f"| {size} | {case} | {step} | {seconds:.2f} |")
    lines += [
        "",
        "## Ratios (targets: data path >= 3x, whole command >= 2x, RSS 100 MB vs 1 GB within 50 MB)",
        "",
    ]
    lines += ratio_lines(summary)
    for size, rates in stages.items():
        raw = rates.get("_raw_bytes", {}).get("bytes", 0)
        lines += ["", f"## Raw stage rates on the {size} dataset ({raw / MB:.0f} MB RDB), one run each", "",
                  "| stage | s | MB/s of raw RDB | ratio |", "|---|---:|---:|---:|"]  # fmt: skip
        for label, r in rates.items():
            if not label.startswith("_"):
                lines.append(f"| {label} | {r['wall_s']:.2f} | {r['mb_s']:.1f} | {fmt(r.get('ratio'), 2)} |")
    return "\n".join(lines) + "\n"


def ratio_lines(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    lines = []
    sizes = list(dict.fromkeys(size for size, _ in summary))
    for size in sizes:
        for dest in ("local", "s3"):
            rb = summary.get((size, f"runbook-{dest}"), {})
            rd = summary.get((size, f"redis-dr-{dest}"), {})
            if not rb.get("runs") or not rd.get("runs"):
                continue
            whole = rd["mb_s"] / rb["mb_s"]
            verdict = "met" if whole >= 2 else "MISSED"
            line = f"- {size} to {dest}: whole command {whole:.2f}x the runbook ({verdict})"
            if rd.get("data_path_mb_s"):
                data = rd["data_path_mb_s"] / rb["mb_s"]
                line += f"; data path {data:.2f}x ({'met' if data >= 3 else 'MISSED'})"
            lines.append(line + ".")
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for case in CASES:
            a, b = summary.get((small, case), {}), summary.get((large, case), {})
            if a.get("runs") and b.get("runs"):
                diff = b["peak_tree_rss_mb"] - a["peak_tree_rss_mb"]
                diff_single = b["max_rss_mb"] - a["max_rss_mb"]
                verdict = ""
                if case.startswith("redis-dr"):
                    verdict = " (met)" if abs(diff) <= 50 else " (MISSED)"
                lines.append(
                    f"- {case}: peak RSS {small} -> {large}: {a['peak_tree_rss_mb']:.0f} -> "
                    f"{b['peak_tree_rss_mb']:.0f} MB tree ({diff:+.0f} MB){verdict}; "
                    f"largest process {a['max_rss_mb']:.0f} -> {b['max_rss_mb']:.0f} MB "
                    f"({diff_single:+.0f} MB)."
                )
    return lines or ["- (not enough successful cases to compare)"]


def machine_meta(args: argparse.Namespace, delay: str) -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             check=False).stdout.split(" sha=")[0].strip()  # fmt: skip
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": re.sub(r"[^a-zA-Z0-9-]", "-", socket.gethostname())[:24] or "host",
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gb": round(mem_kb / 1024 / 1024),
        "kernel": platform.release(),
        "redis_version": version,
        "python": platform.python_version(),
        "runs": args.runs,
        "diskless_sync_delay": delay,
        "command": " ".join(["benchmarks/backup_bench.py", *sys.argv[1:]]),
    }


# ---------------------------------------------------------------- main


def redis_dr_ready(binary: str) -> bool:
    try:
        done = subprocess.run([binary, "--help"], capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100MB,1GB", help="RDB sizes, comma separated (default 100MB,1GB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--max-minutes", type=float, default=90,
                        help="stop starting new runs after this long")  # fmt: skip
    parser.add_argument("--redis-dr", default=str(Path(sys.executable).parent / "redis-dr"))
    parser.add_argument("--diskless-sync-delay", default=None,
                        help="repl-diskless-sync-delay for the server (default: Redis's, 5 s)")  # fmt: skip
    parser.add_argument("--no-stage-rates", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="parent of the scratch dir (default: system temp)"
    )
    args = parser.parse_args(argv)

    sizes = [(label.strip(), parse_size(label)) for label in args.sizes.split(",") if label.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}")
    if any(c.startswith("redis-dr") for c in cases) and not redis_dr_ready(args.redis_dr):
        print(f"!! {args.redis_dr} --help fails: skipping the redis-dr cases", file=sys.stderr)
        cases = [c for c in cases if not c.startswith("redis-dr")]

    deadline = time.monotonic() + args.max_minutes * 60
    runs: list[Run] = []
    stages: dict[str, dict[str, dict[str, float]]] = {}
    notes: list[str] = []
    delay = args.diskless_sync_delay or "5"
    work = Path(tempfile.mkdtemp(prefix="redis-dr-bench-", dir=args.work_dir))
    try:
        for label, size in sizes:
            config = {"save": ""}
            if args.diskless_sync_delay is not None:
                config["repl-diskless-sync-delay"] = args.diskless_sync_delay
            size_dir = work / label
            size_dir.mkdir()
            with RedisServer(config=config, data_dir=size_dir / "redis") as server, SeaweedFS() as s3:
                s3.create_bucket(BUCKET)
                t0 = time.perf_counter()
                summary = populate_session_store(server.client(socket_timeout=300),
                                                 target_rdb_bytes=size, seed=args.seed)  # fmt: skip
                note = (f"{label}: {summary.total_keys:,} keys ({summary.sessions:,} sessions) "
                        f"filled in {time.perf_counter() - t0:.1f} s")  # fmt: skip
                print(f"== {note}", flush=True)
                notes.append(note)
                bench = Bench(size_dir, server, s3, args.redis_dr, args.timeout, label)
                for run in range(1, args.runs + 1):
                    for case in cases:
                        if time.monotonic() > deadline:
                            notes.append(f"{label}: stopped at run {run} ({case}): --max-minutes reached")
                            break
                        if case.startswith("runbook"):
                            result = bench.runbook(run, to_s3=case.endswith("s3"))
                        else:
                            result = bench.redis_dr_backup(run, to_s3=case.endswith("s3"))
                        runs.append(result)
                        status = "ok" if result.ok else f"FAILED {result.error[:300]}"
                        print(
                            f"   {label} {case} run {run}: {result.wall_s:.2f} s, "
                            f"raw {result.raw_bytes / MB:.0f} MB, "
                            f"peak tree RSS {result.peak_tree_rss / MB:.0f} MB, "
                            f"data path {fmt(result.data_path_s, 2)} s: {status}",
                            flush=True,
                        )
                    else:
                        continue
                    break
                if not args.no_stage_rates and label == sizes[-1][0] and time.monotonic() < deadline:
                    stages[label] = stage_rates(bench)
                shutil.rmtree(size_dir / "redis-dr-local", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    meta = machine_meta(args, delay)
    table = summarize(runs)
    text = report(meta, table, stages)
    if notes:
        text += "\n## Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    print()
    print(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.datetime.now(dt.UTC):%Y-%m-%d-%H%M}-{meta['host']}"
    (args.results_dir / f"{stem}.md").write_text(text)
    (args.results_dir / f"{stem}.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "notes": notes,
                "summary": [{"size": s, "case": c, **row} for (s, c), row in table.items()],
                "runs": [asdict(r) for r in runs],
                "stage_rates": stages,
            },
            indent=2,
        )
    )
    print(f"wrote {args.results_dir / stem}.md and .json")
    return 0 if runs and all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

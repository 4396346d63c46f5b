"""Restore benchmark: `redis-dr restore` against a bare load, the runbook's restore and `redis-cli --pipe`.

    .venv/bin/python benchmarks/restore_bench.py --sizes 100MB,1GB --runs 3

For each dataset size, prepared once (not timed as cases):

  source     a session store (cli.demo_sessions, seed S) of about that RDB size, saved:
             the RDB every case restores, and `redis-dr backup` of it into a file://
             location (zstd, the default); the runbook's backup of it,
             `redis-backup-YYYYmmdd-HHMMSS.rdb.gz` (gzip -6 of the dump)
  previous   another session store (seed S+1) of the same size: what the target holds
             before each restore (a restore replaces a damaged copy of itself)

Then, alternating, each case N times (median and min-max reported):

  bare       a bare redis-server started on a copy of the RDB (warm page cache):
             process start to INFO `loading:0`
  file       redis-dr restore --target local:///DIR/redis.conf --yes --json: a
             redis-server started as `redis-server DIR/redis.conf` holding `previous`;
             the flow's phases and recovery time (--json) and the whole command's wall
  file-nocp  the same with --no-checkpoint (the checkpoint is a full backup of the
             target's current data: it dominates when that is large)
  replay     redis-dr restore --strategy replay --redis-url (a live, empty local
             server) --no-checkpoint: MB/s of RDB and keys/s of the flow's replay phase
  pipe       the same keys as `RESTORE key abs-ttl payload REPLACE ABSTTL` commands
             fed to `redis-cli --pipe` into a fresh server (benchmarks/replay_bench.py):
             the write side's ceiling
  runbook    the runbooks' manual restore into the same kind of target: cp the .gz from
             the backups directory (stands in for `aws s3 cp`), gunzip, redis-cli
             SHUTDOWN NOSAVE (until the process is gone), cp to dump.rdb, start
             redis-server, wait for loading:0, redis-cli DBSIZE

Memory: the redis-dr process's own peak RSS (VmHWM, sampled every 50 ms), and its
ru_maxrss from GNU time as backup_bench.py reports it, which also counts the
children it reaped (its temporary Prefect API server; for replay the throwaway
redis-server, which holds the dataset).

MB = 10^6 bytes; MB/s = RDB bytes / seconds. The target servers run with Redis's
defaults (so a checkpoint pays the 5 s `repl-diskless-sync-delay`) except `save ""`.
Everything binds 127.0.0.1; every server is stopped and every scratch file removed
at the end, also on failure. Results: printed as markdown and written to
benchmarks/results/<date>-restore-<host>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.backup_bench import fmt, machine_meta, parse_size, redis_dr_ready, run_measured  # noqa: E402
from benchmarks.replay_bench import file_chunks, run_pipe, write_restore_file  # noqa: E402
from cli.demo_sessions import populate_session_store  # noqa: E402
from redis_dr.errors import RedisDRError  # noqa: E402
from redis_dr.platforms.local import LocalPlatform  # noqa: E402
from redis_dr.restore.throwaway import load_throwaway  # noqa: E402
from redis_dr.sandbox.ports import free_port  # noqa: E402
from redis_dr.sandbox.redis_server import RedisServer, find_redis_binary  # noqa: E402

MB = 1_000_000
INSTANCE = "bench"
CASES = ("bare", "file", "file-nocp", "replay", "pipe", "runbook")
POLL = 0.01  # seconds between two INFO calls while a server loads


# ---------------------------------------------------------------- servers


def client_for(port: int, timeout: float = 60) -> redis.Redis:
    """No reconnect retries: redis-py's default backs off for seconds against a port not yet open."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=1,
                       retry=Retry(NoBackoff(), 0))  # fmt: skip


def loaded(port: int, timeout: float) -> dict[str, Any]:
    """Poll INFO persistence until `loading:0`; the INFO then."""
    client = client_for(port, 10)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                info: dict[str, Any] = client.info("persistence")
                if not int(info.get("loading", 1)):
                    return info
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis on port {port} still loading after {timeout:.0f} s")
            time.sleep(POLL)
    finally:
        client.close()


def dbsize(port: int) -> int:
    client = client_for(port)
    try:
        return sum(int(db["keys"]) for name, db in client.info("keyspace").items() if name.startswith("db"))
    finally:
        client.close()


def keys_problem(port: int, backup_keys: int, *, whole_load: bool) -> str:
    """'' when the server holds the backup, else what is wrong.

    Session keys expire between the backup and a restore (TTLs from 20 minutes): after a
    load, keys loaded + dropped as expired must add up to the backup's; after a replay
    (which skips expired keys) at least 99 % of them must be there.
    """
    if whole_load:
        info = client_for(port).info("persistence")
        loaded_keys = int(info["rdb_last_load_keys_loaded"]) + int(info["rdb_last_load_keys_expired"])
        if loaded_keys != backup_keys:
            return f"the server loaded {loaded_keys} keys (with those expired), the backup has {backup_keys}"
        return ""
    keys = dbsize(port)
    return "" if keys >= 0.99 * backup_keys else f"{keys} keys after the replay, the backup has {backup_keys}"


def log_load_seconds(log: Path) -> float | None:
    """The server's own 'DB loaded from disk: X seconds' (the last one in its log)."""
    seconds = None
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            if "DB loaded from disk:" in line:
                seconds = float(line.rsplit(":", 1)[1].split()[0])
    return seconds


class ConfServer:
    """A redis-server started as `redis-server DIR/redis.conf` (detached), data in DIR/data.

    Redis's defaults except `save ""`; it may be stopped and restarted by someone else
    (redis-dr restore does), so stopping goes through the config file, not our pid.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.conf = base / "redis.conf"
        self.log = base / "redis.log"
        self.port = free_port()
        self._popen: subprocess.Popen[bytes] | None = None
        self.data.mkdir(parents=True)
        lines = ["bind 127.0.0.1", f"port {self.port}", f"dir {self.data}", f"logfile {self.log}",
                 "daemonize no", 'save ""']  # fmt: skip
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def spawn(self) -> None:
        """Start the server, detached (its own session), and return at once."""
        self._popen = subprocess.Popen(
            [find_redis_binary(), str(self.conf)], cwd=self.base, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._popen.wait, daemon=True).start()

    def start(self, rdb: Path | None, timeout: float) -> None:
        """Place `rdb` as its dump.rdb, start it, wait for loading:0."""
        if rdb is not None:
            shutil.copyfile(rdb, self.data / "dump.rdb")
        self.spawn()
        loaded(self.port, timeout)

    def stop(self) -> None:
        """Kill whatever runs on this config (also a server redis-dr restarted), remove the directory."""
        with contextlib.suppress(RedisDRError, OSError):
            LocalPlatform(str(self.conf)).kill()
        if self._popen is not None and self._popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------- measuring


class PeakOwnRss:
    """VmHWM (peak RSS) of the `redis-dr` process under this one, sampled every 50 ms.

    VmHWM is per address space and restarts at exec, so unlike ru_maxrss it counts
    neither this benchmark nor the children the command starts. It only grows, so the
    last sample before the process exits is its peak (to within 50 ms of the end).
    """

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.peak = 0
        self.pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _find(self) -> int | None:
        me = str(os.getpid())
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
                if any(a.endswith(self.marker.encode()) for a in argv[:2]) and me in self._ancestors(
                    int(entry.name)
                ):
                    return int(entry.name)
            except (OSError, ValueError):
                continue
        return None

    @staticmethod
    def _ancestors(pid: int) -> list[str]:
        chain = []
        for _ in range(4):  # time -> python redis-dr: two levels under us
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            pid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            chain.append(str(pid))
            if pid <= 1:
                break
        return chain

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            if self.pid is None:
                self.pid = self._find()
                continue
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return  # exited

    def __enter__(self) -> PeakOwnRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    size: str
    case: str
    run: int
    ok: bool = False
    wall_s: float = 0.0  # whole command (runbook: sum of its steps; bare: start to loading:0)
    recovery_s: float | None = None
    phases: dict[str, float] = field(default_factory=dict)  # flow phases, or runbook steps
    own_rss: int = 0  # VmHWM of the redis-dr process
    max_rss: int = 0  # ru_maxrss (GNU time)
    keys: int = 0
    server_load_s: float | None = None  # the server's own "DB loaded from disk" figure
    mb_s: float | None = None
    keys_s: float | None = None
    load1: float = 0.0
    error: str = ""


def last_error(stderr: str) -> str:
    """The command's own one-line error (`redis-dr: error: ...`), else the end of its stderr."""
    lines = [line for line in stderr.splitlines() if line.startswith("redis-dr: error:")]
    return lines[-1] if lines else stderr.strip()[-800:]


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def flow_outcome(stdout: str) -> dict[str, Any]:
    """The RestoreOutcome that `--json` prints last on stdout."""
    start = stdout.find("\n{") + 1 if not stdout.startswith("{") else 0
    outcome: dict[str, Any] = json.loads(stdout[start:])
    return outcome


# ---------------------------------------------------------------- the dataset


@dataclass
class Dataset:
    label: str
    dir: Path
    rdb: Path  # the backup's RDB (as saved)
    previous: Path  # what a target holds before a restore
    rdb_bytes: int
    keys: int
    backup_id: str
    store_url: str
    gz: Path  # the runbook's backup
    notes: list[str]


def prepare(label: str, size: int, seed: int, work: Path, redis_dr: str, timeout: float) -> Dataset:
    """The RDB, its redis-dr backup and runbook backup, and the target's previous data."""
    base = work / label
    base.mkdir()
    notes: list[str] = []
    store = base / "store"
    backups = base / "backups"
    backups.mkdir()
    with RedisServer({"repl-diskless-sync-delay": "0"}, data_dir=base / "source") as server:
        client = server.client(socket_timeout=300)
        started = time.perf_counter()
        summary = populate_session_store(client, target_rdb_bytes=size, seed=seed)
        client.save()
        rdb = base / "backup.rdb"
        shutil.copyfile(server.data_dir / "dump.rdb", rdb)
        notes.append(f"{label}: source {summary.total_keys:,} keys ({summary.sessions:,} sessions), "
                     f"{rdb.stat().st_size / MB:.0f} MB RDB, filled and saved in "
                     f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        m = run_measured([redis_dr, "backup", "--redis-url", server.url, "--storage", store.as_uri(),
                          "--instance", INSTANCE], timeout=timeout)  # fmt: skip
        if m.returncode != 0:
            raise RuntimeError(f"redis-dr backup exited {m.returncode}: {m.stderr.strip()[-800:]}")
        backup_id = m.stdout.strip().splitlines()[-1].strip()
        notes.append(f"{label}: redis-dr backup {backup_id} (zstd) in {m.wall_s:.1f} s")
        gz = backups / f"redis-backup-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.rdb.gz"
        with gz.open("wb") as out:
            started = time.perf_counter()
            subprocess.run(["gzip", "-6", "-c", str(rdb)], stdout=out, check=True, timeout=timeout)
        notes.append(f"{label}: runbook backup {gz.name}, {gz.stat().st_size / MB:.0f} MB, gzip -6 in "
                     f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        client.flushall()
        populate_session_store(client, target_rdb_bytes=size, seed=seed + 1)
        client.save()
        previous = base / "previous.rdb"
        shutil.copyfile(server.data_dir / "dump.rdb", previous)
        keys = summary.total_keys
    return Dataset(label, base, rdb, previous, rdb.stat().st_size, keys, backup_id, store.as_uri(), gz, notes)


# ---------------------------------------------------------------- cases


@dataclass
class Bench:
    data: Dataset
    redis_dr: str
    timeout: float
    servers: list[ConfServer] = field(default_factory=list)
    restore_file: Path | None = None
    commands: int = 0

    def server(self, name: str) -> ConfServer:
        base = self.data.dir / name
        shutil.rmtree(base, ignore_errors=True)
        server = ConfServer(base)
        self.servers.append(server)
        return server

    def done(self, server: ConfServer) -> None:
        server.stop()
        self.servers.remove(server)

    def bare(self, result: Run) -> None:
        """Start a bare redis-server on a copy of the RDB; time it to loading:0."""
        server = self.server("bare")
        try:
            shutil.copyfile(self.data.rdb, server.data / "dump.rdb")  # also warms the page cache
            started = time.perf_counter()
            server.spawn()
            info = loaded(server.port, self.timeout)
            result.wall_s = time.perf_counter() - started
            result.keys = int(info.get("rdb_last_load_keys_loaded", 0)) or dbsize(server.port)
            result.server_load_s = log_load_seconds(server.log)
            result.mb_s = self.data.rdb_bytes / MB / result.wall_s
            result.ok = True
        finally:
            self.done(server)

    def restore(self, result: Run, *, strategy: str, checkpoint: bool) -> None:
        """`redis-dr restore` of the backup, by file into a local target or by replay into a live one."""
        name = f"{result.case}-target"
        server = self.server(name)
        try:
            argv = [self.redis_dr, "restore", "--storage", self.data.store_url, "--instance", INSTANCE,
                    "--backup", self.data.backup_id, "--yes", "--json"]  # fmt: skip
            if strategy == "file":
                server.start(self.data.previous, self.timeout)
                argv += ["--target", f"local://{server.conf}"]
            else:
                server.start(None, self.timeout)  # live and empty
                argv += ["--redis-url", server.url, "--strategy", "replay"]
            if not checkpoint:
                argv.append("--no-checkpoint")
            with PeakOwnRss("redis-dr") as own:
                m = run_measured(argv, timeout=self.timeout)
            result.wall_s, result.max_rss, result.own_rss = m.wall_s, m.max_rss, own.peak
            if m.returncode != 0:
                result.error = f"exited {m.returncode}: {last_error(m.stderr)}"
                return
            outcome = flow_outcome(m.stdout)
            result.phases = {k: float(v) for k, v in outcome["phases"].items()}
            result.recovery_s = float(outcome["recovery_seconds"])
            result.keys = dbsize(server.port)
            if strategy == "file":
                result.server_load_s = log_load_seconds(server.log)
            elif result.phases.get("replay"):
                result.mb_s = self.data.rdb_bytes / MB / result.phases["replay"]
                result.keys_s = result.keys / result.phases["replay"]
            result.error = keys_problem(server.port, self.data.keys, whole_load=strategy == "file")
            result.ok = not result.error
        finally:
            self.done(server)

    def pipe(self, result: Run, work: Path) -> None:
        """`redis-cli --pipe` of RESTORE commands for the same keys (the file is made once)."""
        if self.restore_file is None:
            path = self.data.dir / "restore.resp"
            with load_throwaway(file_chunks(self.data.rdb), work_dir=work) as throwaway:
                self.commands, _ = write_restore_file(throwaway, path)
            self.restore_file = path
        done = run_pipe(self.restore_file, self.data.rdb_bytes, self.commands)
        result.wall_s = done["seconds"]
        result.mb_s = done["mb_per_s"]
        result.keys_s = done["keys_per_s"]
        result.keys = self.commands
        result.ok = True

    def runbook(self, result: Run) -> None:
        """The runbooks' manual restore, each step a process as an operator types it."""
        server = self.server("runbook-target")
        scratch = self.data.dir / "runbook-restore"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        try:
            server.start(self.data.previous, self.timeout)
            gz = scratch / self.data.gz.name
            rdb = scratch / gz.name.removesuffix(".gz")
            cli = find_redis_binary("redis-cli")
            pid = int(client_for(server.port).info("server")["process_id"])

            def stopped() -> None:
                deadline = time.monotonic() + self.timeout
                while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"redis-server {pid} still runs after SHUTDOWN NOSAVE")
                    time.sleep(POLL)

            def start_and_load() -> None:
                server.spawn()
                loaded(server.port, self.timeout)

            steps: list[tuple[str, list[str] | Callable[[], None]]] = [
                ("cp .gz", ["cp", str(self.data.gz), str(gz)]),
                ("gunzip", ["gunzip", str(gz)]),
                ("SHUTDOWN NOSAVE", [cli, "-h", "127.0.0.1", "-p", str(server.port), "SHUTDOWN", "NOSAVE"]),
                ("(until gone)", stopped),
                ("cp dump.rdb", ["cp", str(rdb), str(server.data / "dump.rdb")]),
                ("start, loading:0", start_and_load),
                ("DBSIZE", [cli, "-h", "127.0.0.1", "-p", str(server.port), "DBSIZE"]),
            ]
            for label, step in steps:
                if callable(step):
                    started = time.perf_counter()
                    step()
                    seconds = time.perf_counter() - started
                else:
                    m = run_measured(step, timeout=self.timeout)
                    seconds = m.wall_s
                    result.max_rss = max(result.max_rss, m.max_rss)
                    if m.returncode != 0:
                        result.error = f"{label} exited {m.returncode}: {m.stderr.strip()[-300:]}"
                        return
                result.phases[label] = seconds
                result.wall_s += seconds
            result.keys = dbsize(server.port)
            result.server_load_s = log_load_seconds(server.log)
            result.error = keys_problem(server.port, self.data.keys, whole_load=True)
            result.ok = not result.error
        finally:
            self.done(server)
            shutil.rmtree(scratch, ignore_errors=True)

    def stop_all(self) -> None:
        for server in list(self.servers):
            self.done(server)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return "gone"
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


# ---------------------------------------------------------------- reporting


def one_line(text: str) -> str:
    """A table cell: no line breaks, no column separators."""
    return " ".join(text.split()).replace("|", "/")


def spread(values: list[float], digits: int = 2) -> str:
    """'median (min-max)'."""
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def report(meta: dict[str, Any], datasets: dict[str, Dataset], runs: list[Run], notes: list[str]) -> str:
    def good(size: str, case: str) -> list[Run]:
        return [r for r in runs if r.size == size and r.case == case and r.ok]

    lines = [
        f"# Restore benchmark, {meta['date']}",
        "",
        f"Machine: {meta['host']}, {meta['nproc']} cores ({meta['cpu']}), {meta['mem_gb']} GB RAM, "
        f"kernel {meta['kernel']}; {meta['redis_version']}; Python {meta['python']}.",
        f"Command: `{meta['command']}`; {meta['runs']} runs per case, alternating; median (min-max).",
        f"Load average (1 min): {meta['load_before']} before, {meta['load_after']} after; "
        f"median {meta['load_median']} at the start of the cases (other work shared the 2 cores).",
        'Targets: Redis defaults except `save ""` (a checkpoint pays the 5 s '
        "`repl-diskless-sync-delay`); the file target holds another session store of the same size "
        "before each restore; the replay target is empty. MB = 10^6 bytes; MB/s = RDB bytes / s.",
        "",
        "| dataset | case | wall s (whole) | recovery s | MB/s of RDB | keys/s | redis-dr peak RSS MB "
        "| ru_maxrss MB | runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, data in datasets.items():
        for case in CASES:
            ok = good(size, case)
            failed = [r for r in runs if r.size == size and r.case == case and not r.ok]
            if not ok:
                if failed:
                    lines.append(f"| {size} | {case} | failed: {one_line(failed[-1].error)[:160]} |||||||")
                continue
            own = [r.own_rss / MB for r in ok if r.own_rss]
            maxrss = [r.max_rss / MB for r in ok if r.max_rss]
            mb_s = [r.mb_s for r in ok if r.mb_s] or [data.rdb_bytes / MB / r.wall_s for r in ok]
            lines.append(
                f"| {size} ({data.rdb_bytes / MB:.0f} MB, {data.keys:,} keys) | {case} | "
                f"{spread([r.wall_s for r in ok])} | {spread([r.recovery_s for r in ok if r.recovery_s])} | "
                f"{spread(mb_s, 1)} | {spread([r.keys_s for r in ok if r.keys_s], 0)} | {spread(own, 0)} | "
                f"{spread(maxrss, 0)} | {len(ok)}{f' (+{len(failed)} failed)' if failed else ''} |"
            )
    lines += ["", "Phases of the restore flow (`--json`) and steps of the runbook, seconds:", ""]
    for size in datasets:
        for case in ("file", "file-nocp", "replay", "runbook"):
            ok = good(size, case)
            names = list(dict.fromkeys(name for r in ok for name in r.phases))
            if not names:
                continue
            cells = [f"{name} {spread([r.phases[name] for r in ok if name in r.phases])}" for name in names]
            loads = [r.server_load_s for r in ok if r.server_load_s is not None]
            tail = f"; the server's own 'DB loaded' {spread(loads)}" if loads else ""
            lines.append(f"- {size} {case}: " + ", ".join(cells) + tail)
    lines += ["", "## Against the issue's targets", ""]
    lines += target_lines(datasets, good)
    return "\n".join(lines) + "\n\n" + run_table(runs) + ("\n## Notes\n\n" + "\n".join(
        f"- {n}" for n in notes) + "\n" if notes else "")  # fmt: skip


def target_lines(datasets: dict[str, Dataset], good: Callable[[str, str], list[Run]]) -> list[str]:
    lines: list[str] = []
    for size, data in datasets.items():
        bare = median_or_none([r.wall_s for r in good(size, "bare")])
        if bare is None:
            lines.append(f"- {size}: no bare load measured (the file cases are not compared).")
        else:
            lines.append(f"- {size}: bare load {bare:.2f} s ({data.rdb_bytes / MB / bare:.0f} MB/s).")
        for case in ("file-nocp", "file"):
            ok = good(size, case)
            if not ok or bare is None:
                continue
            load = statistics.median(r.phases.get("load", 0.0) for r in ok)
            recovery = statistics.median(r.recovery_s or 0.0 for r in ok)
            wall = statistics.median(r.wall_s for r in ok)
            extra = statistics.median((r.recovery_s or 0.0) - r.phases.get("load", 0.0) for r in ok)
            verdict = "met" if load <= 1.3 * bare else "MISSED"
            lines.append(
                f"  - {case}: load phase {load:.2f} s = **{load / bare:.2f}x** the bare load (<= 1.3x: "
                f"{verdict}); recovery {recovery:.2f} s = {recovery / bare:.2f}x, i.e. 1.3x bare + "
                f"{recovery - 1.3 * bare:.1f} s (all but the load: {extra:.1f} s); whole command "
                f"{wall:.2f} s = {wall / bare:.2f}x."
            )
        replay, pipe = good(size, "replay"), good(size, "pipe")
        if replay:
            rate = statistics.median(r.mb_s or 0.0 for r in replay)
            line = f"  - replay: {rate:.1f} MB/s of RDB (>= 50 MB/s: {'met' if rate >= 50 else 'MISSED'})"
            if pipe:
                ceiling = statistics.median(r.mb_s or 0.0 for r in pipe)
                line += f", {rate / ceiling:.2f}x the `redis-cli --pipe` ceiling ({ceiling:.1f} MB/s)"
            lines.append(line + ".")
        runbook, nocp = good(size, "runbook"), good(size, "file-nocp")
        if runbook and nocp and bare is not None:
            rb = statistics.median(r.wall_s for r in runbook)
            wall = statistics.median(r.wall_s for r in nocp)
            recovery = statistics.median(r.recovery_s or 0.0 for r in nocp)
            lines.append(
                f"  - runbook's manual restore {rb:.2f} s ({rb / bare:.2f}x bare) against redis-dr "
                f"--no-checkpoint {wall:.2f} s whole command ({wall / rb:.2f}x the runbook), "
                f"{recovery:.2f} s recovery."
            )
    sizes = list(datasets)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for case in ("file", "file-nocp", "replay"):
            a = median_or_none([r.own_rss / MB for r in good(small, case) if r.own_rss])
            b = median_or_none([r.own_rss / MB for r in good(large, case) if r.own_rss])
            ma = median_or_none([r.max_rss / MB for r in good(small, case) if r.max_rss])
            mb = median_or_none([r.max_rss / MB for r in good(large, case) if r.max_rss])
            if a is not None and b is not None:
                lines.append(
                    f"- {case}: redis-dr process peak RSS {small} -> {large}: {a:.0f} -> {b:.0f} MB "
                    f"({b - a:+.0f} MB); ru_maxrss {fmt(ma, 0)} -> {fmt(mb, 0)} MB."
                )
    return lines or ["- (not enough successful cases to compare)"]


def run_table(runs: list[Run]) -> str:
    lines = [
        "## Every run",
        "",
        "| dataset | case | run | ok | wall s | recovery s | phases / steps s | peak RSS MB | ru_maxrss MB "
        "| load avg |",
        "|---|---|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        phases = ", ".join(f"{k} {v:.2f}" for k, v in r.phases.items())
        lines.append(
            f"| {r.size} | {r.case} | {r.run} | {'ok' if r.ok else 'FAILED ' + one_line(r.error)[:300]} | "
            f"{r.wall_s:.2f} | {fmt(r.recovery_s, 2)} | {phases} | {r.own_rss / MB:.0f} | "
            f"{r.max_rss / MB:.0f} | {r.load1:.2f} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def code_version() -> str:
    """Which code was measured: the commit, and whether the working tree differed from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"code: {REPO} (not a git work tree)"
    return f"code: commit {head}" + (" plus uncommitted changes" if dirty else "")  # fmt: skip


def progress_line(r: Run) -> str:
    phases = json.dumps({k: round(v, 2) for k, v in r.phases.items()})
    status = "ok" if r.ok else "FAILED " + r.error[:400]
    return (
        f"   {r.size} {r.case} run {r.run}: wall {r.wall_s:.2f} s, recovery {fmt(r.recovery_s, 2)} s, "
        f"{phases}, own RSS {r.own_rss / MB:.0f} MB, ru_maxrss {r.max_rss / MB:.0f} MB, "
        f"MB/s {fmt(r.mb_s)}: {status}"
    )


def run_case(bench: Bench, case: str, result: Run, work: Path) -> None:
    if case == "bare":
        bench.bare(result)
    elif case == "file":
        bench.restore(result, strategy="file", checkpoint=True)
    elif case == "file-nocp":
        bench.restore(result, strategy="file", checkpoint=False)
    elif case == "replay":
        bench.restore(result, strategy="replay", checkpoint=False)
    elif case == "pipe":
        bench.pipe(result, work)
    else:
        bench.runbook(result)


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM runs the finally blocks (servers stopped, scratch removed) like Ctrl-C does."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100MB,1GB", help="RDB sizes, comma separated (default 100MB,1GB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--redis-dr", default=str(Path(sys.executable).parent / "redis-dr"))
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--no-save", action="store_true", help="print only, write no result file")
    parser.add_argument("--note", action="append", default=[], help="a line for the results' notes")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="parent of the scratch dir (system temp; ~8x the size)"
    )
    args = parser.parse_args(argv)

    sizes = [(label.strip(), parse_size(label)) for label in args.sizes.split(",") if label.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if set(cases) - set(CASES):
        parser.error(f"unknown cases {sorted(set(cases) - set(CASES))}")
    if not redis_dr_ready(args.redis_dr):
        parser.error(f"{args.redis_dr} --help fails")

    load_before = load_average()
    runs: list[Run] = []
    notes: list[str] = [*args.note, code_version()]
    datasets: dict[str, Dataset] = {}
    work = Path(tempfile.mkdtemp(prefix="redis-dr-restore-bench-", dir=args.work_dir))
    bench: Bench | None = None
    try:
        with sigterm_unwinds():
            for label, size in sizes:
                data = prepare(label, size, args.seed, work, args.redis_dr, args.timeout)
                datasets[label] = data
                notes += data.notes
                print("== " + "\n== ".join(data.notes), flush=True)
                bench = Bench(data, args.redis_dr, args.timeout)
                for run in range(1, args.runs + 1):
                    for case in cases:
                        result = Run(label, case, run, load1=load_average())
                        try:
                            run_case(bench, case, result, work)
                        except (RedisDRError, RuntimeError, TimeoutError, OSError, redis.RedisError,
                                ValueError, KeyError) as exc:  # fmt: skip
                            result.error = f"{type(exc).__name__}: {exc}"
                        runs.append(result)
                        print(progress_line(result), flush=True)
                bench.stop_all()
                bench = None
                shutil.rmtree(data.dir, ignore_errors=True)
    finally:
        if bench is not None:
            bench.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    meta = machine_meta(args, "5")
    meta["command"] = " ".join(["benchmarks/restore_bench.py", *sys.argv[1:]] if argv is None else argv)
    meta["load_before"] = f"{load_before:.2f}"
    meta["load_after"] = f"{load_average():.2f}"
    meta["load_median"] = f"{statistics.median(r.load1 for r in runs):.2f}" if runs else "-"
    text = report(meta, datasets, runs, notes)
    print()
    print(text)
    if not args.no_save:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        path = args.results_dir / f"{dt.datetime.now(dt.UTC):%Y-%m-%d-%H%M}-restore-{meta['host']}.md"
        path.write_text(text)
        print(f"wrote {path}")
    return 0 if runs and all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

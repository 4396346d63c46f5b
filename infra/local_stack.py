"""A local stack to try redis-dr in the Prefect UI: `make up` starts it, `make down` stops it.

    python infra/local_stack.py up      # start everything, register the deployments, print what to open
    python infra/local_stack.py down    # stop everything; no process is left

`up` starts one supervisor process in the background that owns every part and
stops them all when it gets SIGTERM:

- a Prefect server with its UI on http://127.0.0.1:4200 (its database in .stack/prefect);
- a demo redis-server (a local:// target) filled with web sessions;
- an S3 server (SeaweedFS) with the bucket `redis-dr-local`, and the directory .stack/backups;
- a process worker polling the work pool `redis-dr-local`.

It writes the `local` environment file (.stack/local.yaml: the paths and ports of
this machine) and registers its deployments with `redis-dr deploy`. Everything
binds 127.0.0.1; everything lives under .stack/ (removed by `down --purge`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Where everything lives, the UI's port and the demo's size (the tests use another dir and port).
STACK = Path(os.environ.get("REDIS_DR_STACK_DIR") or ROOT / ".stack").absolute()
UI_PORT = int(os.environ.get("REDIS_DR_STACK_PORT") or 4200)
SESSIONS = int(os.environ.get("REDIS_DR_STACK_SESSIONS") or 20_000)
STATE = STACK / "stack.json"
#: Held by `up` and then by its supervisor for the stack's whole life: one stack per directory.
LOCK = STACK / "stack.lock"
#: The supervisor's pid, written as soon as it starts (stack.json comes only once it is ready).
PID_FILE = STACK / "supervisor.pid"
SUPERVISOR_LOG = STACK / "supervisor.log"
API_URL = f"http://127.0.0.1:{UI_PORT}/api"
POOL = "redis-dr-local"
BUCKET = "redis-dr-local"
READY_SECONDS = 180.0

ENVIRONMENT = """\
# The `local` environment of `make up` (written by infra/local_stack.py: this machine's paths and ports).
environment: local
protected: false
prefect:
  work_pool: {pool}
  timezone: UTC
schedules:
  backup: "*/30 * * * *"
  prune: "10,40 * * * *"
  replicate: "20 * * * *"
  validate: "0 3 * * *"
  restore_test: "0 4 1 * *"
drills: true                   # the demo Redis may be killed and restored from the UI (redis-drill)
retention:
  keep_last: 6
  keep_hourly: 24
  keep_daily: 7
replication:
  max_lag: 2h
validation:
  sample: 1
  all_locations: true
instances:
  sessions:
    target: local://{redis_conf}
    storage:
      - file://{backups}
      - url: s3://{bucket}/backups?endpoint=http://127.0.0.1:{s3_port}&region=us-east-1
        retention: {{keep_last: 3, keep_daily: 7}}
"""


def _say(line: str) -> None:
    print(line, flush=True)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


# -- the supervisor (runs in the background) ------------------------------------------------------


def supervise() -> None:
    """Start every part, write the state file, and stop everything on SIGTERM."""
    from cli.demo_sessions import populate_session_store
    from redis_dr.sandbox.redis_server import RedisServer
    from tests.servers.seaweedfs import SeaweedFS

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    children: list[subprocess.Popen[bytes]] = []
    prefect_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_HOME": str(STACK / "prefect"),
        "PREFECT_API_URL": API_URL,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    with SeaweedFS() as s3, RedisServer({"save": "3600 1"}, data_dir=STACK / "redis") as redis_server:
        s3.create_bucket(BUCKET)
        prefect_env.update(
            AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
            AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
        )  # fmt: skip
        summary = populate_session_store(redis_server.client(), sessions=SESSIONS, seed=7)
        env_file = STACK / "local.yaml"
        env_file.write_text(
            ENVIRONMENT.format(
                pool=POOL, redis_conf=redis_server.data_dir / "redis.conf", backups=STACK / "backups",
                bucket=BUCKET, s3_port=s3.ports["s3"],
            )
        )  # fmt: skip
        log = (STACK / "prefect-server.log").open("ab")
        children.append(
            subprocess.Popen(
                [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                 "--port", str(UI_PORT), "--analytics-off"],
                env=prefect_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=STACK,
            )
        )  # fmt: skip
        try:
            _wait_for_api(children[0], stop)
            subprocess.run(
                [str(Path(sys.executable).with_name("redis-dr")), "deploy", "--env-file", str(env_file)],
                env=prefect_env, check=True, stdin=subprocess.DEVNULL, cwd=ROOT,
            )  # fmt: skip
            worker_log = (STACK / "worker.log").open("ab")
            children.append(
                subprocess.Popen(
                    [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", POOL,
                     "--type", "process", "--install-policy", "never"],
                    env=prefect_env, stdin=subprocess.DEVNULL, stdout=worker_log, stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            )  # fmt: skip
            STATE.write_text(
                json.dumps(
                    {
                        "supervisor": os.getpid(),
                        "ui": f"http://127.0.0.1:{UI_PORT}",
                        "redis": redis_server.url,
                        "redis_conf": str(redis_server.data_dir / "redis.conf"),
                        "sessions": summary.sessions,
                        "keys": redis_server.client().dbsize(),
                        "s3": s3.endpoint,
                        "backups": str(STACK / "backups"),
                        "env_file": str(env_file),
                        # SeaweedFS too: its directory is not under .stack/, so `down` finds it only here.
                        "children": [child.pid for child in children] + _pid_of(s3),
                    },
                    indent=2,
                )
            )
            stop.wait()
        finally:
            for child in reversed(children):
                child.send_signal(signal.SIGINT)  # a worker and a server both stop in order on SIGINT
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def _pid_of(server: Any) -> list[int]:
    process = getattr(server, "_process", None)
    return [process.pid] if process is not None else []


def _wait_for_api(server: subprocess.Popen[bytes], stop: threading.Event) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not _healthy(f"{API_URL}/health"):
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited (see {STACK / 'prefect-server.log'})")
        if stop.is_set() or time.monotonic() > deadline:
            raise RuntimeError("the Prefect server did not answer in time")
        time.sleep(0.3)


def stack_processes() -> list[int]:
    """Processes whose command line or working directory is inside .stack/ (none once it is down)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(STACK) in argv or cwd == str(STACK) or cwd.startswith(f"{STACK}/"):
            found.append(int(entry.name))
    return found


# -- the commands ---------------------------------------------------------------------------------


def up() -> int:
    """Start the supervisor in the background and wait until the stack is ready."""
    if STATE.exists() and _supervisor(_state().get("supervisor")):
        _say(f"the local stack is already up: open {_state()['ui']} ('make down' stops it)")
        return 0
    STACK.mkdir(parents=True, exist_ok=True)
    lock = _claim()
    if lock is None:
        _say("the local stack is starting already (another 'make up'?): wait for it, or 'make down' stops it")
        return 1
    try:
        if _healthy(f"{API_URL}/health"):
            _say(
                f"something already answers on 127.0.0.1:{UI_PORT}: stop it first "
                "(the stack's UI uses that port)"
            )
            return 1
        STATE.unlink(missing_ok=True)
        with SUPERVISOR_LOG.open("ab") as log:
            supervisor = subprocess.Popen(
                [sys.executable, __file__, "supervise"], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, pass_fds=(lock,),
            )  # fmt: skip
        PID_FILE.write_text(str(supervisor.pid))
    finally:
        os.close(lock)  # the supervisor holds the lock from here on (it inherited it)
    deadline = time.monotonic() + READY_SECONDS
    while not STATE.exists():
        if supervisor.poll() is not None or time.monotonic() > deadline:
            _say(f"the local stack did not start: see {SUPERVISOR_LOG}")
            if supervisor.poll() is None:
                supervisor.terminate()
            return 1
        time.sleep(0.3)
    state = _state()
    _say(f"""
The local stack is up (all on 127.0.0.1; 'make down' stops it):
  Prefect UI     {state["ui"]}
  demo Redis     {state["redis"]}: {state["keys"]:,} keys, {state["sessions"]:,} web sessions (target local://{state["redis_conf"]})
  backups        file://{state["backups"]}  and  s3://{BUCKET}/backups on {state["s3"]}
  environment    {state["env_file"]}: its deployments are registered; a worker polls pool {POOL}

Open {state["ui"]}/deployments, choose a deployment (e.g. redis-backup / local-sessions), press Run,
then "Quick run" (or "Custom run" to fill the form), and read the run's Artifacts tab.""")
    return 0


def down(purge: bool) -> int:
    """Stop the supervisor (it stops every part) and wait until no process of the stack is left."""
    state = _state() if STATE.exists() else {}
    pid = _supervisor(state.get("supervisor")) or _supervisor(_pid_file())
    if pid is None:
        _say("the local stack is not running")
    else:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _say("the local stack is down")
    left = [pid for pid in {*state.get("children", []), *stack_processes()} if _alive(pid)]
    for pid in left:
        _say(f"stopping process {pid}, left behind")
        os.kill(pid, signal.SIGKILL)
    STATE.unlink(missing_ok=True)
    PID_FILE.unlink(missing_ok=True)
    if purge:
        import shutil

        shutil.rmtree(STACK, ignore_errors=True)
        _say(f"removed {STACK}")
    return 0


def _claim() -> int | None:
    """The stack's lock (a descriptor), or None when another `up` or a running supervisor holds it."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _supervisor(pid: object) -> int | None:
    """`pid` if it is a live supervisor of this stack (not a process that reused a dead one's pid)."""
    if not isinstance(pid, int) or not _alive(pid):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if b"supervise" in argv and any(arg.endswith(b"local_stack.py") for arg in argv) else None


def _pid_file() -> int | None:
    """The supervisor's pid from its pid file (a stack still starting has no stack.json yet)."""
    try:
        return int(PID_FILE.read_text())
    except (OSError, ValueError):
        return None


def _state() -> dict[str, Any]:
    return dict(json.loads(STATE.read_text()))


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def main() -> int:
    """`up`, `down [--purge]` or `supervise` (internal)."""
    parser = argparse.ArgumentParser(prog="infra/local_stack.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "supervise"])
    parser.add_argument(
        "--purge", action="store_true", help="down: also remove .stack/ (backups, UI history)"
    )
    args = parser.parse_args()
    if args.command == "supervise":
        supervise()
        return 0
    return up() if args.command == "up" else down(args.purge)


if __name__ == "__main__":
    sys.exit(main())

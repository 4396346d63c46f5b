"""`redis-dr demo`: the whole disaster on this machine, in a minute.

A throwaway session store is backed up, broken (sessions lost, others
corrupted), restored by file and verified, with the recovery time printed; then
broken again and repaired by replaying only `session:*` into the live server.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import redis

from cli.demo_sessions import populate_session_store
from cli.output import say
from cli.prefect_runtime import prefect_api
from redis_dr.config import build_request
from redis_dr.restore.request import build_restore_request
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.units import human_size

INSTANCE = "demo-sessions"


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    parser = sub.add_parser(
        "demo", help="a whole disaster: back up a throwaway session store, break it, restore it, verify it"
    )
    parser.add_argument("--sessions", type=int, default=40_000, help="session keys to create")
    parser.add_argument("--backups", type=Path, default=Path("backups"), help="backup directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Start Redis, fill it, back it up, break it, restore it twice (file, then replay), clean up."""
    storage_url = f"file://{args.backups.absolute()}"
    # No diskless-sync delay: the demo's server has no replicas to wait for (production servers do).
    with prefect_api(), RedisServer({"repl-diskless-sync-delay": "0"}) as server:
        from flows.backup import backup
        from flows.restore import restore

        client = server.client()
        target = f"local://{server.data_dir / 'redis.conf'}"
        say(f"1/6 started a throwaway redis-server on {server.url} ({target})")
        summary = populate_session_store(client, sessions=args.sessions, seed=42)
        say(
            f"    loaded a web session store: {client.dbsize():,} keys, "
            f"{summary.sessions:,} sessions with TTLs"
        )

        say("2/6 backing it up (backup flow, temporary local Prefect API)")
        manifest = backup(
            build_request(instance=INSTANCE, redis_url=server.url, storage=storage_url, environment="demo")
        )
        say(f"    committed backup {manifest.id}: {human_size(manifest.raw_size)} RDB in {storage_url}")
        before = client.dbsize()

        say("3/6 disaster: a bad deploy deletes a third of the sessions and corrupts others")
        lost, corrupted = break_sessions(client, seed=7)
        say(
            f"    {lost:,} sessions gone, {corrupted:,} overwritten with garbage: "
            f"{client.dbsize():,} keys left"
        )

        say("4/6 restoring the backup by file: stop, place dump.rdb, start, verify")
        outcome = restore(
            build_restore_request(instance=INSTANCE, storage=storage_url, target=target, checkpoint=True),
            approved=True,
        )
        for finding in outcome.verification.findings:
            say(f"    {finding.result.value.upper():<4}  {finding.name}: {finding.detail}")
        say(
            f"    restored {client.dbsize():,} keys (had {before:,}); checkpoint of the broken state: "
            f"backup {outcome.checkpoint_id}"
        )
        say(f"    recovery time: {outcome.recovery_seconds:.1f} s from start to verified")

        say("5/6 disaster again: sessions lost; this time the server stays up: replay session:* only")
        lost, _ = break_sessions(client, seed=8, corrupt=False)
        say(f"    {lost:,} sessions gone; other keys (users, carts) have changed since and must stay")
        client.set("user:demo-change", "written after the backup: a replay of session:* keeps it")
        started = time.monotonic()
        replayed = restore(
            build_restore_request(instance=INSTANCE, storage=storage_url, redis_url=server.url,
                                  match="session:*", checkpoint=False),
            approved=True,
        )  # fmt: skip
        say(
            f"    replayed session:* in {time.monotonic() - started:.1f} s; {client.dbsize():,} keys; "
            f"user:demo-change still there: {client.exists('user:demo-change') == 1}"
        )
        say(f"    recovery time: {replayed.recovery_seconds:.1f} s from start to verified")
    say("6/6 the throwaway redis-server has been stopped and its directory removed")
    say(f"Backups: .venv/bin/redis-dr list --storage {storage_url} --instance {INSTANCE}")
    print(outcome.backup_id)
    return 0


def break_sessions(client: redis.Redis, *, seed: int, corrupt: bool = True) -> tuple[int, int]:
    """Delete a third of the `session:*` keys and, if `corrupt`, overwrite a tenth of the rest."""
    rng = random.Random(seed)
    sessions = sorted(client.scan_iter(match="session:*", count=5000))
    rng.shuffle(sessions)
    third = len(sessions) // 3
    lost, rest = sessions[:third], sessions[third:]
    damaged = rest[: len(rest) // 10] if corrupt else []
    pipe = client.pipeline(transaction=False)
    for key in lost:
        pipe.unlink(key)
    for key in damaged:
        pipe.set(key, b"\x00garbage", keepttl=True)
    pipe.execute()
    return len(lost), len(damaged)

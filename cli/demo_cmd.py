"""`redis-dr demo`: back up a throwaway session store into ./backups, end to end, on this machine."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from cli.demo_sessions import populate_session_store
from cli.output import say
from cli.prefect_runtime import prefect_api
from redis_dr.catalog import Catalog
from redis_dr.config import build_request
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from redis_dr.units import human_size


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    parser = sub.add_parser("demo", help="back up a throwaway Redis session store into ./backups")
    parser.add_argument("--sessions", type=int, default=40_000, help="session keys to create")
    parser.add_argument("--backups", type=Path, default=Path("backups"), help="backup directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Start Redis, fill it, run the backup flow (temporary local Prefect API), list, clean up."""
    backups = args.backups.absolute()
    storage_url = f"file://{backups}"
    with prefect_api(), RedisServer() as server:  # the API starts while Prefect is imported
        say(f"1/4 started a throwaway redis-server on {server.url} (data in {server.data_dir})")
        started = time.monotonic()
        summary = populate_session_store(server.client(), sessions=args.sessions, seed=42)
        keys = server.client().dbsize()
        say(
            f"2/4 loaded a web session store: {keys:,} keys ({summary.sessions:,} sessions with TTLs, "
            f"{summary.users:,} user hashes, sets, sorted sets, lists) in {time.monotonic() - started:.1f} s"
        )
        say("3/4 running the backup flow on a temporary local Prefect API (no server needed)...")
        from flows.backup import backup

        request = build_request(
            instance="demo-sessions", redis_url=server.url, storage=storage_url, environment="demo"
        )
        manifest = backup(request)
        say("4/4 backups of demo-sessions, newest first:")
        storage = open_storage(storage_url)
        for item in Catalog(storage, request.instance).list().manifests:
            say(
                f"    {item.id}  {item.source.total_keys:,} keys  {human_size(item.raw_size)} RDB -> "
                f"{human_size(item.stored_size)} {item.files[0].compression.value}  "
                f"{item.duration_seconds:.1f} s"
            )
    folder = backups / manifest.instance / manifest.id
    say("")
    say(f"Backup {manifest.id} is committed in {folder}/")
    say(f"  data:     {folder / manifest.files[0].name}")
    say(f"  manifest: {folder / 'manifest.json'}")
    say(f"List them:   .venv/bin/redis-dr list --storage {storage_url} --instance {manifest.instance}")
    say(
        f"Fetch one:   .venv/bin/redis-dr fetch --storage {storage_url} --instance {manifest.instance} "
        "--backup latest --output /tmp/restored.rdb"
    )
    say("The throwaway redis-server has been stopped and its directory removed.")
    print(manifest.id)
    return 0

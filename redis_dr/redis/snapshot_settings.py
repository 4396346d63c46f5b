"""Server settings that make one snapshot faster, set for its length and put back whatever happens.

A restore's checkpoint is a snapshot taken while someone waits for the restore.
With Redis's defaults it first waits `repl-diskless-sync-delay` (5 s) for other
replicas, then compresses with LZF at ~64 MB/s (REDIS_FACTS, yardsticks); our own
zstd stage compresses faster. So the checkpoint asks for no delay and no LZF, and
puts both back after. A server that refuses CONFIG (managed Redis) is snapshotted
as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from redis_dr.errors import ServerFailureError
from redis_dr.redis.connection import RedisEndpoint, open_client

FAST_SNAPSHOT = {"repl-diskless-sync-delay": "0", "rdbcompression": "no"}


@contextlib.contextmanager
def fast_snapshot(endpoint: RedisEndpoint) -> Iterator[str | None]:
    """Yield None with FAST_SNAPSHOT applied, or why it could not be (the server's settings stay).

    On exit every changed setting gets its earlier value back; a setting someone changed
    meanwhile is left as they set it. If putting one back fails, ServerFailureError names
    the CONFIG SET to run (unless another error is already on its way out)."""
    before: dict[str, str] = {}
    client = open_client(endpoint)
    try:
        for name, value in FAST_SNAPSHOT.items():
            old = _config_value(client, name)
            if old is None:
                continue  # a server without this setting
            before[name] = old
            if old != value:
                client.config_set(name, value)
    except (redis.ResponseError, redis.ConnectionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _put_back(client, before, quiet=True)
        client.close()
        yield f"CONFIG refused ({reason})"
        return
    client.close()
    failed = True
    try:
        yield None
        failed = False
    finally:
        client = open_client(endpoint)
        try:
            _put_back(client, before, quiet=failed)
        finally:
            client.close()


def _put_back(client: redis.Redis, before: dict[str, str], *, quiet: bool) -> None:
    """Give each setting in `before` its value back where it still has ours."""
    failed: list[str] = []
    reason = ""
    for name, value in before.items():
        try:
            current = _config_value(client, name)
            if current == FAST_SNAPSHOT[name] and value != current:
                client.config_set(name, value)
        except redis.RedisError as exc:
            failed.append(f"CONFIG SET {name} {value!r}")
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    if failed and not quiet:
        raise ServerFailureError(
            f"could not put the server's settings back after the checkpoint ({reason}): run "
            f"{' and '.join(failed)} on it"
        )


def _config_value(client: redis.Redis, name: str) -> str | None:
    """CONFIG GET of one setting as text; None when the server has no such setting."""
    reply = client.execute_command("CONFIG", "GET", name)  # type: ignore[no-untyped-call]
    pairs = dict(zip(reply[::2], reply[1::2], strict=True)) if isinstance(reply, list) else dict(reply)
    for key, value in pairs.items():
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None

"""What INFO says about a server, as one typed model."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import redis
from pydantic import BaseModel, ConfigDict, Field

from redis_dr.errors import UnsupportedError
from redis_dr.redis.connection import endpoint_of
from redis_dr.redis.errors import translate

INFO_SECTIONS = ("server", "replication", "memory", "persistence", "stats", "keyspace")
_DB_LINE = re.compile(r"^db(\d+)$")


class KeyspaceStats(BaseModel):
    """Key counts of one database, serialised as INFO names them: `keys`, `expires`.

    The attribute is `key_count`, not `keys`: an attribute named `keys` makes the
    model look like a mapping to `dict()`, which Prefect applies to task inputs.
    """

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    key_count: int = Field(alias="keys")
    expires: int


class ServerFacts(BaseModel):
    """The facts a backup records and decides on, read from one INFO call."""

    redis_version: str
    role: str
    replication_id: str
    replication_offset: int
    keyspace: dict[int, KeyspaceStats]
    used_memory: int
    lastsave: datetime
    rdb_bgsave_in_progress: bool
    aof_rewrite_in_progress: bool
    rdb_last_bgsave_status: str
    aof_enabled: bool
    #: RDB saves since the server started (Redis >= 7.0; None on older servers).
    rdb_saves: int | None = None
    loading: bool = False
    connected_replicas: int = 0
    master_host: str | None = None
    aof_last_write_status: str = "ok"
    #: Keys the last load read, and keys it dropped because their expiry had passed (Redis >= 7.0).
    rdb_last_load_keys_loaded: int | None = None
    rdb_last_load_keys_expired: int | None = None
    #: Keys removed by expiry since the server started (INFO stats).
    expired_keys: int = 0
    process_id: int | None = None
    config_file: str | None = None

    @property
    def busy_saving(self) -> bool:
        """True while a BGSAVE or an AOF rewrite runs."""
        return self.rdb_bgsave_in_progress or self.aof_rewrite_in_progress


def read_server_facts(client: redis.Redis) -> ServerFacts:
    """Read `ServerFacts` with a single INFO (plain INFO on servers older than 7.0)."""
    try:
        try:
            raw = info_text(client, *INFO_SECTIONS)
        except redis.ResponseError as exc:
            if "NOPERM" in str(exc).upper():
                raise
            raw = info_text(client)  # Redis < 7 takes one section only; the default has all of ours
    except Exception as exc:
        raise translate(exc, endpoint_of(client), "INFO") from None
    return parse_info(raw)


def parse_info(text: str) -> ServerFacts:
    """Build `ServerFacts` from the text of an INFO reply."""
    fields: dict[str, str] = {}
    keyspace: dict[int, KeyspaceStats] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        db = _DB_LINE.match(key)
        if db:
            stats = dict(item.split("=", 1) for item in value.split(",") if "=" in item)
            keyspace[int(db.group(1))] = KeyspaceStats(
                keys=int(stats.get("keys", 0)), expires=int(stats.get("expires", 0))
            )
        else:
            fields[key] = value.strip()
    return ServerFacts(
        redis_version=fields.get("redis_version", "0.0.0"),
        role=fields.get("role", "unknown"),
        replication_id=fields.get("master_replid", ""),
        replication_offset=int(fields.get("master_repl_offset", 0)),
        keyspace=keyspace,
        used_memory=int(fields.get("used_memory", 0)),
        lastsave=datetime.fromtimestamp(int(fields.get("rdb_last_save_time", 0)), tz=UTC),
        rdb_bgsave_in_progress=fields.get("rdb_bgsave_in_progress") == "1",
        aof_rewrite_in_progress=fields.get("aof_rewrite_in_progress") == "1",
        rdb_last_bgsave_status=fields.get("rdb_last_bgsave_status", "unknown"),
        aof_enabled=fields.get("aof_enabled") == "1",
        rdb_saves=_count(fields.get("rdb_saves")),
        loading=fields.get("loading") == "1",
        connected_replicas=_count(fields.get("connected_slaves")) or 0,
        master_host=fields.get("master_host") or None,
        aof_last_write_status=fields.get("aof_last_write_status", "ok"),
        rdb_last_load_keys_loaded=_count(fields.get("rdb_last_load_keys_loaded")),
        rdb_last_load_keys_expired=_count(fields.get("rdb_last_load_keys_expired")),
        expired_keys=_count(fields.get("expired_keys")) or 0,
        process_id=_count(fields.get("process_id")),
        config_file=fields.get("config_file") or None,
    )


def _count(text: str | None) -> int | None:
    """A non-negative integer field, or None when absent or not a number."""
    return int(text) if text is not None and text.isdigit() else None


def max_rdb_version(redis_version: str) -> int:
    """Newest RDB format a server of `redis_version` writes and reads."""
    match = re.match(r"^(\d+)\.(\d+)", redis_version)
    if not match:
        raise UnsupportedError(f"cannot parse Redis version {redis_version!r}")
    version = (int(match.group(1)), int(match.group(2)))
    table = [((7, 4), 12), ((7, 2), 11), ((7, 0), 10), ((5, 0), 9), ((4, 0), 8), ((3, 2), 7)]
    for minimum, rdb_version in table:
        if version >= minimum:
            return rdb_version
    return 6


def info_text(client: redis.Redis, *sections: str) -> str:
    """INFO as raw text (redis-py's parser would turn hex ids made of digits into ints)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command("INFO", *sections)  # type: ignore[no-untyped-call]
        raw = conn.read_response(disable_decoding=True)
    finally:
        pool.release(conn)
    return bytes(raw).decode("utf-8", "replace")

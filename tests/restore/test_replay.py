"""Key replay into live servers: every type, TTLs, databases, match, flush, keep-existing, ACL, TLS, failures."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from redis_dr.errors import AccessDeniedError, ConfigError, TransientError, UnsupportedError
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.restore.compare import compare_keys
from redis_dr.restore.replay import ReplayOptions, ReplayResult, replay_keys
from redis_dr.restore.throwaway import Throwaway, load_throwaway
from redis_dr.sandbox.ports import free_port, wait_for_port
from redis_dr.sandbox.redis_server import RedisServer
from tests.redis.test_tls import make_certs

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000
MANAGED_RULES = "~* -@all +restore +select +scan +unlink +ping +time"


def fill(client: redis.Redis, other_db: redis.Redis) -> None:
    """Every data type in several encodings, TTLs, a stream with consumer groups; a few keys in db 2."""
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for i in range(120):
        pipe.set(f"session:{i:04d}", f"token-{i}-".encode() * 20, pxat=now + HOUR_MS + i)
    for i in range(40):
        pipe.set(f"user:{i}:name", f"name {i}")
    pipe.set("str:int", 12345)
    pipe.set("str:binary", bytes(range(256)))
    pipe.set("str:big", b"x" * 200_000)
    pipe.rpush("list:small", *range(10))
    pipe.rpush("list:big", *(f"item-{i}" for i in range(2000)))
    pipe.sadd("set:ints", *range(50))
    pipe.sadd("set:small", "a", "b", "c")
    pipe.sadd("set:big", *(f"m{i}" for i in range(1000)))
    pipe.zadd("zset:small", {"a": 1.5, "b": -2, "c": 3e10})
    pipe.zadd("zset:big", {f"m{i}": i / 7 for i in range(1000)})
    pipe.hset("hash:small", mapping={"f1": "v1", "f2": "v2"})
    pipe.hset("hash:big", mapping={f"f{i}": f"v{i}" for i in range(1000)})
    pipe.pexpireat("hash:big", now + 2 * HOUR_MS)
    pipe.execute()
    for i in range(30):
        client.xadd("stream:events", {"n": i, "kind": "click" if i % 2 else "view"})
    client.xgroup_create("stream:events", "workers", id="0")
    client.xgroup_create("stream:events", "audit", id="$")
    client.xreadgroup("workers", "alice", {"stream:events": ">"}, count=7)
    client.xreadgroup("workers", "bob", {"stream:events": ">"}, count=5)
    delivered = client.xpending_range("stream:events", "workers", "-", "+", 12)
    client.xack("stream:events", "workers", *[entry["message_id"] for entry in delivered[:4]])
    client.xdel("stream:events", client.xrange("stream:events", count=1)[0][0])
    other_db.mset({"db2:a": "1", "db2:b": "2"})
    other_db.set("session:db2", "s", px=HOUR_MS)


def all_keys(client: redis.Redis) -> list[bytes]:
    return sorted(client.scan_iter(count=1000))


@pytest.fixture(scope="module")
def backup() -> Iterator[Throwaway]:
    """The test dataset saved by one server and loaded into a throwaway, as a replay sees it."""
    with RedisServer() as server:
        fill(server.client(), server.client(db=2))
        server.client().save()
        rdb = (server.data_dir / "dump.rdb").read_bytes()
    with load_throwaway(iter([rdb])) as throwaway:
        yield throwaway


def endpoint(server: RedisServer, *, user: str | None = None, password: str | None = None) -> RedisEndpoint:
    auth = f"{user or ''}:{password}@" if password else ""
    return RedisEndpoint.from_url(f"redis://{auth}127.0.0.1:{server.port}/0", env={})


def assert_same(source: Throwaway, target: RedisServer, db: int, match: str = "*") -> int:
    """Every key of `db` (matching) is on the target with the same type, value and expiry; how many."""
    keys = sorted(source.client(db=db).scan_iter(match=match, count=1000))
    assert keys
    assert compare_keys(source.client(db=db), target.client(db=db), keys, expiry_tolerance_ms=0) == []
    return len(keys)


def test_every_database_is_replayed_key_for_key(backup: Throwaway, redis_server: RedisServer) -> None:
    result = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions(batch_keys=50))
    assert set(result.databases) == {0, 2}
    for db in (0, 2):
        count = assert_same(backup, redis_server, db)
        stats = result.databases[db]
        assert (stats.scanned, stats.written, stats.kept, stats.expired) == (count, count, 0, 0)
        assert redis_server.client(db=db).dbsize() == count
    assert result.written == result.databases[0].written + 3
    assert result.payload_bytes > 200_000
    assert result.target_version == redis_server.client().info("server")["redis_version"]


def test_absolute_expiry_and_stream_groups_survive(backup: Throwaway, redis_server: RedisServer) -> None:
    replay_keys(backup.client(), endpoint(redis_server), ReplayOptions())
    source, target = backup.client(), redis_server.client()
    for key in (b"session:0007", b"hash:big"):
        expiry = source.execute_command("PEXPIRETIME", key)
        assert expiry > time.time() * 1000
        assert target.execute_command("PEXPIRETIME", key) == expiry
    assert target.execute_command("PEXPIRETIME", "user:1:name") == -1
    groups = {g["name"]: g for g in target.xinfo_groups("stream:events")}
    assert groups[b"workers"]["pending"] == 8
    assert (
        groups[b"workers"]["last-delivered-id"]
        == source.xinfo_groups("stream:events")[1]["last-delivered-id"]
    )
    assert groups[b"audit"]["pending"] == 0
    consumers = {c["name"]: c["pending"] for c in target.xinfo_consumers("stream:events", "workers")}
    assert consumers == {b"alice": 3, b"bob": 5}


def test_one_database_only(backup: Throwaway, redis_server: RedisServer) -> None:
    result = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions(db=2))
    assert list(result.databases) == [2]
    assert assert_same(backup, redis_server, 2) == result.databases[2].written == 3
    assert redis_server.client().dbsize() == 0


def test_a_single_database_target_takes_database_0_only(
    backup: Throwaway, redis_factory: Callable[..., RedisServer]
) -> None:
    target = redis_factory({"databases": "1"})
    with pytest.raises(ConfigError) as caught:
        replay_keys(backup.client(), endpoint(target), ReplayOptions())
    message = str(caught.value)
    assert "has only database 0" in message and "database(s) 0, 2" in message and "\n" not in message
    assert target.client().dbsize() == 0  # refused before anything was written
    result = replay_keys(backup.client(), endpoint(target), ReplayOptions(db=0))
    assert result.databases[0].written == assert_same(backup, target, 0)


def test_match_replays_only_matching_keys(backup: Throwaway, redis_server: RedisServer) -> None:
    result = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions(match="session:*"))
    assert result.databases[0].written == 120 and result.databases[2].written == 1
    assert assert_same(backup, redis_server, 0, "session:*") == 120
    assert all(key.startswith(b"session:") for key in all_keys(redis_server.client()))
    assert all_keys(redis_server.client(db=2)) == [b"session:db2"]


def test_flush_empties_the_replayed_databases_only(backup: Throwaway, redis_server: RedisServer) -> None:
    admin = redis_server.client()
    admin.mset({"junk:1": "x", "junk:2": "y", "session:0001": "old"})
    redis_server.client(db=2).set("junk:db2", "z")
    redis_server.client(db=7).set("other:db7", "kept")
    result = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions(flush=True))
    assert (result.databases[0].removed, result.databases[2].removed) == (3, 1)
    assert assert_same(backup, redis_server, 0) == admin.dbsize()
    assert assert_same(backup, redis_server, 2) == redis_server.client(db=2).dbsize()
    assert redis_server.client(db=7).get("other:db7") == b"kept"


def test_flush_with_match_removes_only_matching_keys(backup: Throwaway, redis_server: RedisServer) -> None:
    admin = redis_server.client()
    admin.mset({"session:stale": "gone soon", "cart:1": "kept", "user:1:name": "kept too"})
    result = replay_keys(
        backup.client(), endpoint(redis_server), ReplayOptions(flush=True, match="session:*")
    )
    assert result.databases[0].removed == 1
    assert admin.exists("session:stale") == 0
    assert admin.get("cart:1") == b"kept" and admin.get("user:1:name") == b"kept too"
    assert admin.dbsize() == 120 + 2


def test_keep_existing_keeps_the_targets_keys_and_counts_them(
    backup: Throwaway, redis_server: RedisServer
) -> None:
    admin = redis_server.client()
    admin.set("user:3:name", "changed since")
    admin.set("session:0002", "newer session")
    result = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions(keep_existing=True, db=0))
    total = backup.client().dbsize()
    assert (result.databases[0].kept, result.databases[0].written) == (2, total - 2)
    assert admin.get("user:3:name") == b"changed since" and admin.get("session:0002") == b"newer session"
    others = [k for k in all_keys(backup.client()) if k not in (b"user:3:name", b"session:0002")]
    assert compare_keys(backup.client(), admin, others, expiry_tolerance_ms=0) == []


def test_replace_is_idempotent(backup: Throwaway, redis_server: RedisServer) -> None:
    first = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions())
    redis_server.client().set("str:int", "damaged")
    second = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions())
    assert second.written == first.written
    assert redis_server.client().get("str:int") == b"12345"


def test_a_key_that_expired_in_the_throwaway_is_counted(
    redis_factory: Callable[..., RedisServer], redis_server: RedisServer
) -> None:
    source = redis_factory()
    source.client().mset({f"k{i}": i for i in range(20)})
    expire_at = int(time.time() * 1000) + 200
    source.client().set("short", "lived", pxat=expire_at)
    while time.time() * 1000 <= expire_at:  # observed: its expiry has passed
        time.sleep(0.05)
    result = replay_keys(source.client(), endpoint(redis_server), ReplayOptions())
    assert (result.databases[0].written, result.databases[0].expired) == (20, 1)
    assert redis_server.client().exists("short") == 0


def test_a_key_expiring_before_its_restore_runs_is_counted(
    redis_factory: Callable[..., RedisServer], redis_server: RedisServer
) -> None:
    """The target holds writes (CLIENT PAUSE WRITE) until the key's expiry has passed: RESTORE ... ABSTTL
    then stores nothing and says OK, and the replay counts the key as expired, not written."""
    source = redis_factory()
    source.client().mset({f"k{i}": i for i in range(20)})
    expire_at = int(time.time() * 1000) + 1500
    source.client().set("short", "lived", pxat=expire_at)
    redis_server.client().execute_command("CLIENT", "PAUSE", 3000, "WRITE")
    result = replay_keys(source.client(), endpoint(redis_server), ReplayOptions())
    assert time.time() * 1000 > expire_at
    assert (result.databases[0].written, result.databases[0].expired) == (20, 1)
    assert redis_server.client().dbsize() == 20 and redis_server.client().exists("short") == 0


def acl_target(
    redis_factory: Callable[..., RedisServer], rules: str, password: str = "replay-secret"
) -> RedisServer:
    target = redis_factory(password="admin-secret")
    target.client().execute_command("ACL", "SETUSER", "replayer", "on", f">{password}", *rules.split())
    return target


def test_an_acl_user_with_the_managed_redis_command_set(
    backup: Throwaway, redis_factory: Callable[..., RedisServer]
) -> None:
    target = acl_target(redis_factory, MANAGED_RULES)
    target.client().set("session:old", "x")
    ep = endpoint(target, user="replayer", password="replay-secret")
    limited = redis.Redis(host="127.0.0.1", port=target.port, username="replayer", password="replay-secret")
    for denied in (("FLUSHALL",), ("CONFIG", "GET", "dir"), ("INFO",), ("SYNC",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.execute_command(*denied)
    result = replay_keys(backup.client(), ep, ReplayOptions(flush=True))
    assert result.target_version is None  # INFO is not allowed: the version check is left to RESTORE
    assert result.databases[0].removed == 1
    assert assert_same(backup, target, 0) == result.databases[0].written


def test_noperm_names_the_command_and_the_rule_to_add(
    backup: Throwaway, redis_factory: Callable[..., RedisServer]
) -> None:
    target = acl_target(redis_factory, "~* -@all +select +scan +ping +time")
    with pytest.raises(AccessDeniedError) as caught:
        replay_keys(
            backup.client(), endpoint(target, user="replayer", password="replay-secret"), ReplayOptions()
        )
    message = str(caught.value)
    assert message.startswith(f"NOPERM: Redis at 127.0.0.1:{target.port} refused RESTORE")
    assert "+restore" in message and "\n" not in message and "replay-secret" not in message


def test_noperm_on_a_key_pattern_names_the_key_rule(
    backup: Throwaway, redis_factory: Callable[..., RedisServer]
) -> None:
    target = acl_target(redis_factory, "~session:* -@all +restore +select +scan +ping +time")
    ep = endpoint(target, user="replayer", password="replay-secret")
    result = replay_keys(backup.client(), ep, ReplayOptions(match="session:*", db=0))
    assert result.databases[0].written == 120
    with pytest.raises(AccessDeniedError, match=r"refused RESTORE .*needs ~\* \+restore"):
        replay_keys(backup.client(), ep, ReplayOptions(db=0))


def test_wrong_password_is_one_line(backup: Throwaway, redis_factory: Callable[..., RedisServer]) -> None:
    target = acl_target(redis_factory, MANAGED_RULES)
    with pytest.raises(AccessDeniedError) as caught:
        replay_keys(backup.client(), endpoint(target, user="replayer", password="wrong-one"), ReplayOptions())
    assert str(caught.value) == (
        f"Redis at 127.0.0.1:{target.port} refused the password (WRONGPASS): check REDIS_PASSWORD or the URL"
    )


def test_tls_target(backup: Throwaway, redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    ca, cert, key = make_certs(tmp_path)
    tls_port = free_port()
    target = redis_factory(
        {
            "tls-port": str(tls_port),
            "tls-cert-file": str(cert),
            "tls-key-file": str(key),
            "tls-ca-cert-file": str(ca),
            "tls-auth-clients": "no",
        }
    )
    wait_for_port(tls_port, 10)
    ep = RedisEndpoint.from_url(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}", env={})
    result = replay_keys(backup.client(), ep, ReplayOptions(batch_keys=64, window_bytes=1 << 16))
    assert assert_same(backup, target, 0) == result.databases[0].written
    assert assert_same(backup, target, 2) == result.databases[2].written


def test_a_target_that_vanishes_mid_replay_says_how_many_keys_were_written(
    backup: Throwaway, redis_factory: Callable[..., RedisServer]
) -> None:
    target = redis_factory()
    seen: list[int] = []

    def kill_after_first_batch(written: int, _bytes: int) -> None:
        seen.append(written)
        if len(seen) == 1:
            process = target._process
            assert process is not None
            process.kill()
            process.wait()

    with pytest.raises(TransientError) as caught:
        replay_keys(
            backup.client(),
            endpoint(target),
            ReplayOptions(batch_keys=10, window_bytes=1 << 16),
            progress=kill_after_first_batch,
        )
    message = str(caught.value)
    assert f"lost the connection to Redis at 127.0.0.1:{target.port}" in message
    assert f"after {seen[-1]} keys were written" in message and seen[-1] >= seen[0] > 0
    assert "idempotent" in message and "\n" not in message


class OldRedis:
    """A stand-in for a Redis 6.2 server (none is installed here): answers PING, TIME and INFO,
    and records every command it receives."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as reader:
            while line := reader.readline():
                args = [reader.readline()[:-2] for _ in range(int(line[1:]) * 2)][1::2]
                self.commands.append(args[0].upper())
                conn.sendall(self._reply(args[0].upper()))

    @staticmethod
    def _reply(command: bytes) -> bytes:
        if command == b"TIME":
            now = time.time()
            return b"*2\r\n$10\r\n%d\r\n$6\r\n%06d\r\n" % (int(now), int(now % 1 * 1e6))
        if command == b"INFO":
            text = b"# Server\r\nredis_version:6.2.14\r\n"
            return b"$%d\r\n%s\r\n" % (len(text), text)
        if command == b"HELLO":
            pairs = [b"server", b"redis", b"version", b"6.2.14", b"mode", b"standalone"]
            return (
                b"%4\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in pairs) + b"$5\r\nproto\r\n:3\r\n"
            )
        return b"+PONG\r\n" if command == b"PING" else b"+OK\r\n"


def test_a_target_too_old_for_the_payloads_is_refused_before_writing(backup: Throwaway) -> None:
    old = OldRedis()
    ep = RedisEndpoint.from_url(f"redis://127.0.0.1:{old.port}/0", env={})
    with pytest.raises(UnsupportedError) as caught:
        replay_keys(backup.client(), ep, ReplayOptions(backup_rdb_version=10, flush=True))
    message = str(caught.value)
    assert message.startswith(f"Redis 6.2.14 at 127.0.0.1:{old.port} reads RDB versions up to 9;")
    assert "the backup is RDB 10" in message and "writes its keys as RDB 10" in message
    assert not {b"RESTORE", b"UNLINK", b"SCAN"} & set(old.commands)


def test_result_serialises_for_reports(backup: Throwaway, redis_server: RedisServer) -> None:
    result = replay_keys(backup.client(), endpoint(redis_server), ReplayOptions(db=2))
    again = ReplayResult.model_validate_json(result.model_dump_json())
    assert again.databases[2].written == 3 and again.seconds >= 0

"""Unit tests: URL parsing, redaction, RDB headers, error translation, INFO parsing."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.exceptions as rex

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    IntegrityError,
    PermanentError,
    ServerFailureError,
    TransientError,
    UnsupportedError,
)
from redis_dr.redis.connection import RedisEndpoint, open_client, redact_redis_url, split_password
from redis_dr.redis.errors import translate
from redis_dr.redis.info import max_rdb_version, parse_info
from redis_dr.redis.rdb import parse_rdb_version

EP = RedisEndpoint.from_url("redis://127.0.0.1:6380/0", env={})


# --- URLs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ca.pem, etc/ca.pem and a@b/ca.pem (a CA file must exist to be accepted)."""
    root = tmp_path_factory.mktemp("ca")
    for name in ("ca.pem", "etc/ca.pem", "a@b/ca.pem"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("-----BEGIN CERTIFICATE-----\n")
    return root


def test_plain_url_defaults() -> None:
    ep = RedisEndpoint.from_url("redis://cache.internal", env={})
    assert (ep.scheme, ep.host, ep.port, ep.db, ep.username, ep.password) == (
        "redis",
        "cache.internal",
        6379,
        0,
        None,
        None,
    )


def test_url_with_user_password_and_db() -> None:
    ep = RedisEndpoint.from_url("redis://backup:p%40ss%3Aw@10.0.0.5:6380/2", env={})
    assert (ep.username, ep.password, ep.host, ep.port, ep.db) == (
        "backup",
        "p@ss:w",
        "10.0.0.5",
        6380,
        2,
    )
    assert ep.redacted() == "redis://backup:***@10.0.0.5:6380/2"


def test_password_from_env_only_when_url_has_none() -> None:
    env = {"REDIS_PASSWORD": "from-env"}
    assert RedisEndpoint.from_url("redis://h:1/0", env=env).password == "from-env"
    assert RedisEndpoint.from_url("redis://:from-url@h:1/0", env=env).password == "from-url"
    assert RedisEndpoint.from_url("redis://h:1/0", env={}).password is None


def test_password_never_in_repr_str_or_redacted(ca_root: Path) -> None:
    ep = RedisEndpoint.from_url(f"rediss://u:hunter2@h:6390/1?ssl_ca_certs={ca_root}/ca.pem", env={})
    for text in (repr(ep), str(ep), ep.redacted(), repr(open_client(ep))):
        assert "hunter2" not in text
    assert ep.redacted() == f"rediss://u:***@h:6390/1?ssl_ca_certs={ca_root}/ca.pem"


def test_tls_and_unix_urls(ca_root: Path) -> None:
    ca = f"{ca_root}/etc/ca.pem"
    ep = RedisEndpoint.from_url(f"rediss://h:6390?ssl_ca_certs={ca}&ssl_cert_reqs=none", env={})
    assert (ep.scheme, ep.ssl_ca_certs, ep.ssl_cert_reqs) == ("rediss", ca, "none")
    unix = RedisEndpoint.from_url("unix:///run/redis.sock", env={})
    assert (unix.scheme, unix.path, unix.address) == ("unix", "/run/redis.sock", "/run/redis.sock")


@pytest.mark.parametrize(
    "url",
    [
        "http://h:1",
        "redis://h:notaport",
        "redis://h:1/x",
        "redis://h:1/0?ssl_ca_certs=/x",
        "rediss://h:1/0?ssl_cert_reqs=maybe",
        "unix://",
        "redis://:secret@",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        RedisEndpoint.from_url(url, env={})
    assert "secret" not in str(info.value)


SECRET = "S3cr3t/with@odd:chars-9d1e"


@pytest.mark.parametrize(
    ("url", "shown", "without"),
    [
        (
            f"redis://backup:{SECRET}@10.0.0.5:6380/2",
            "redis://backup:***@10.0.0.5:6380/2",
            "redis://backup@10.0.0.5:6380/2",
        ),
        (f"redis://:{SECRET}@10.0.0.5:6380/2", "redis://:***@10.0.0.5:6380/2", "redis://10.0.0.5:6380/2"),
        (
            f"redis://10.0.0.5:6380/2?password={SECRET}",
            "redis://10.0.0.5:6380/2?password=***",
            "redis://10.0.0.5:6380/2",
        ),
        (
            f"redis://10.0.0.5:6380/2?username=backup&password={SECRET}&db=3",
            "redis://10.0.0.5:6380/2?username=backup&password=***&db=***",
            "redis://10.0.0.5:6380/2?username=backup&db=3",
        ),
        (
            f"rediss://u:{SECRET}@h:6390/1?ssl_ca_certs=/a@b/ca.pem",
            "rediss://u:***@h:6390/1?ssl_ca_certs=/a@b/ca.pem",
            "rediss://u@h:6390/1?ssl_ca_certs=/a@b/ca.pem",
        ),
        (
            f"unix://u:{SECRET}@/run/redis.sock?db=2",
            "unix://u:***@/run/redis.sock?db=2",
            "unix://u@/run/redis.sock?db=2",
        ),
        ("redis://[::1]:6380/2", "redis://[::1]:6380/2", "redis://[::1]:6380/2"),
    ],
)
def test_passwords_in_every_spelling_are_found_hidden_and_split_off(
    url: str, shown: str, without: str, ca_root: Path
) -> None:
    url, shown, without = (text.replace("=/a@b/", f"={ca_root}/a@b/") for text in (url, shown, without))
    assert redact_redis_url(url) == shown
    assert split_password(url) == (without, None if without == url else SECRET)
    ep = RedisEndpoint.from_url(url, env={})
    assert ep.password == (None if without == url else SECRET)
    assert SECRET not in repr(ep) + str(ep)
    assert RedisEndpoint.from_url(without, env={}).address == ep.address


def test_query_options_win_like_redis_py() -> None:
    ep = RedisEndpoint.from_url("redis://h:1/2?db=5&username=backup&password=pw", env={})
    assert (ep.db, ep.username, ep.password) == (5, "backup", "pw")


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@",
        f"redis://u:{SECRET}@h:notaport/0",
        f"redis://h:1/0?password={SECRET}&ssl_ca_certs=/x",
        "redis://h:1/0?password=S3cr3t&with-amp&db=0",
        f"ftp://u:{SECRET}@h",
        f"127.0.0.1:6379?password={SECRET}",
    ],
)
def test_malformed_urls_never_echo_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        RedisEndpoint.from_url(url, env={})
    assert "S3cr3t" not in str(info.value)
    assert "with-amp" not in str(info.value)
    assert "S3cr3t" not in redact_redis_url(url)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis://127.0.0.1:7400/0?password=Zs&ecret=Ztail", "unknown option(s) in Redis URL"),
        ("redis://127.0.0.1:7400/0?password=Zs&db=Ztail", "its database is not a number"),
        ("rediss://127.0.0.1:7400/0?password=Zs&ssl_cert_reqs=Ztail", "ssl_cert_reqs in"),
        ("rediss://127.0.0.1:7400/0?password=Zs&ssl_ca_certs=/Ztail", "ssl_ca_certs file of Redis URL"),
        ("redis://127.0.0.1:7400/0?db=1&password=Zs&ecret=Ztail", "unknown option(s) in Redis URL"),
    ],
)
def test_an_unencoded_ampersand_in_a_query_password_never_shows_its_tail(url: str, complaint: str) -> None:
    # Parsed as given, and as the CLI does (splitting the password off into REDIS_PASSWORD first).
    for attempt in (lambda: RedisEndpoint.from_url(url, env={}), lambda: split_password(url)):
        with pytest.raises(ConfigError) as info:
            attempt()
        message = str(info.value)
        assert "Ztail" not in message and "ecret" not in message and "Zs" not in message, message
        assert complaint in message, message
        head = message.partition("; its ?password=")[0]
        assert "://127.0.0.1:7400/0" in head and "?" not in head, message  # the URL without its query
        assert "may hold an unencoded '&': percent-encode it (as %26) or use REDIS_PASSWORD" in message


def test_a_query_password_followed_by_valid_options_still_splits_off() -> None:
    assert split_password("redis://h:1/0?password=p%26w&db=3") == ("redis://h:1/0?db=3", "p&w")


@pytest.fixture
def unreadable_ca(tmp_path: Path) -> Iterator[Path]:
    """A CA file this process cannot open: mode 000, and the test run unprivileged if we are root."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ca.chmod(0)
    yield ca
    ca.chmod(0o600)


@pytest.mark.parametrize(
    ("where", "complaint"),
    [
        ("/no/such.pem", "ssl_ca_certs file /no/such.pem does not exist: give the path of the PEM file"),
        ("{tmp}", "ssl_ca_certs file {tmp} is a directory: give the path of the PEM file"),
    ],
)
def test_a_missing_ca_file_is_bad_input(where: str, complaint: str, tmp_path: Path) -> None:
    where, complaint = where.format(tmp=tmp_path), complaint.format(tmp=tmp_path)
    with pytest.raises(ConfigError) as info:
        RedisEndpoint.from_url(f"rediss://127.0.0.1:7400/0?ssl_ca_certs={where}", env={})
    assert str(info.value).startswith(complaint), info.value


def test_an_unreadable_ca_file_is_bad_input(unreadable_ca: Path) -> None:
    if os.geteuid() == 0:  # root opens any file: try it in a child that dropped to nobody
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                RedisEndpoint.from_url(f"rediss://127.0.0.1:7400/0?ssl_ca_certs={unreadable_ca}", env={})
            except ConfigError as exc:
                expected = f"ssl_ca_certs file {unreadable_ca} cannot be read (permission denied)"
                code = 0 if expected in str(exc) else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return
    with pytest.raises(ConfigError, match="cannot be read \\(permission denied\\)"):
        RedisEndpoint.from_url(f"rediss://127.0.0.1:7400/0?ssl_ca_certs={unreadable_ca}", env={})


# --- RDB header -------------------------------------------------------------


def test_rdb_header() -> None:
    assert parse_rdb_version(b"REDIS0010\xfa\x09redis-ver") == 10
    assert parse_rdb_version(b"REDIS0009") == 9


@pytest.mark.parametrize("header", [b"", b"REDIS", b"REDIS00", b"redis0010", b"REDIS00a1", b"\x00" * 9])
def test_not_an_rdb(header: bytes) -> None:
    with pytest.raises(IntegrityError, match="not an RDB file"):
        parse_rdb_version(header)


@pytest.mark.parametrize(
    ("version", "rdb"),
    [("5.0.14", 9), ("6.2.14", 9), ("7.0.15", 10), ("7.2.4", 11), ("7.4.1", 12), ("8.0.2", 12)],
)
def test_max_rdb_version(version: str, rdb: int) -> None:
    assert max_rdb_version(version) == rdb


# --- error translation ------------------------------------------------------


def refused() -> rex.ConnectionError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise rex.ConnectionError("Error 111 connecting to 127.0.0.1:6380. Connection refused.") from exc
    except rex.ConnectionError as err:
        return err


@pytest.mark.parametrize(
    ("exc", "action", "kind", "pattern"),
    [
        (
            refused(),
            "connect",
            TransientError,
            r"^cannot reach Redis at 127.0.0.1:6380: connection refused$",
        ),
        (rex.TimeoutError("Timeout reading from socket"), "SYNC", TransientError, "timed out"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "connect",
            ConfigError,
            "^the host name '127.0.0.1' does not resolve: check the host in the Redis URL$",
        ),
        (
            socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
            "connect",
            TransientError,
            "name resolution failed",
        ),
        (
            rex.ResponseError("DB index is out of range"),
            "INFO",
            ConfigError,
            r"^Redis at 127.0.0.1:6380 has no database 0: use a database number below",
        ),
        (
            rex.AuthenticationError("invalid username-password pair or user is disabled."),
            "connect",
            AccessDeniedError,
            r"refused the password \(WRONGPASS\): check REDIS_PASSWORD or the URL",
        ),
        (rex.AuthenticationError("Authentication required."), "INFO", AccessDeniedError, "NOAUTH"),
        (
            rex.NoPermissionError("this user has no permissions to run the 'replconf' command"),
            "REPLCONF capa eof",
            AccessDeniedError,
            r"needs \+sync \+replconf \+ping \+info for stream mode",
        ),
        (
            rex.ResponseError("NOPERM this user has no permissions to run the 'bgsave' command"),
            "BGSAVE",
            AccessDeniedError,
            r"\+bgsave \+lastsave \+info",
        ),
        (
            rex.ResponseError("unknown command 'SYNC', with args beginning with: "),
            "SYNC",
            UnsupportedError,
            r"does not allow SYNC \(managed Redis\?\): use --mode bgsave or the provider's snaps",
        ),
        (
            rex.ResponseError("ERR unknown command 'BGSAVE'"),
            "BGSAVE",
            UnsupportedError,
            "--mode stream",
        ),
        (
            rex.ResponseError("ERR unknown command 'CONFIG'"),
            "CONFIG GET",
            UnsupportedError,
            "--dump-path",
        ),
        (
            rex.ResponseError("MISCONF Redis is configured to save RDB snapshots, but ..."),
            "SET",
            ServerFailureError,
            "REFUSES WRITES",
        ),
        (
            rex.BusyLoadingError("Redis is loading the dataset in memory"),
            "INFO",
            TransientError,
            "loading",
        ),
        (rex.ResponseError("LOADING Redis is loading"), "INFO", TransientError, "loading"),
        (ValueError("boom"), "INFO", PermanentError, "unexpected error"),
    ],
)
def test_translate(exc: Exception, action: str, kind: type, pattern: str) -> None:
    err = translate(exc, EP, action)
    assert type(err) is kind
    assert "\n" not in str(err)
    assert re.search(pattern, str(err)), str(err)


def test_translate_keeps_our_errors() -> None:
    err = IntegrityError("x")
    assert translate(err, EP, "SYNC") is err


# --- INFO -------------------------------------------------------------------

INFO = """# Server\r
redis_version:7.0.15\r
# Replication\r
role:master\r
master_replid:1234567890123456789012345678901234567890\r
master_repl_offset:42\r
# Memory\r
used_memory:1048576\r
# Persistence\r
rdb_bgsave_in_progress:1\r
rdb_last_save_time:1700000000\r
rdb_last_bgsave_status:ok\r
aof_enabled:0\r
aof_rewrite_in_progress:0\r
# Keyspace\r
db0:keys=10,expires=2,avg_ttl=0\r
db5:keys=1,expires=0,avg_ttl=0\r
"""


def test_parse_info() -> None:
    facts = parse_info(INFO)
    assert facts.redis_version == "7.0.15"
    assert facts.replication_id == "1234567890123456789012345678901234567890"  # stays a string
    assert facts.replication_offset == 42
    assert (
        facts.keyspace[0].key_count == 10
        and facts.keyspace[0].expires == 2
        and facts.keyspace[5].key_count == 1
    )
    assert facts.lastsave == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert facts.rdb_bgsave_in_progress and not facts.aof_rewrite_in_progress and facts.busy_saving
    assert facts.rdb_last_bgsave_status == "ok" and not facts.aof_enabled


def _raised_from(cause: OSError, message: str) -> rex.ConnectionError:
    try:
        try:
            raise cause
        except OSError as exc:
            raise rex.ConnectionError(message) from exc
    except rex.ConnectionError as err:
        return err


def test_reasons_do_not_repeat_the_address() -> None:
    exc = _raised_from(
        OSError(113, "No route to host"), "Error 113 connecting to 127.0.0.1:6380. No route to host."
    )
    assert str(translate(exc, EP, "connect")) == "cannot reach Redis at 127.0.0.1:6380: no route to host"


def test_socket_that_may_not_be_opened_is_access_denied() -> None:
    unix = RedisEndpoint.from_url("unix:///run/redis/redis.sock", env={})
    exc = _raised_from(
        PermissionError(13, "Permission denied"), "Error 13 connecting to /run/redis/redis.sock."
    )
    err = translate(exc, unix, "connect")
    assert type(err) is AccessDeniedError
    assert str(err).startswith("permission denied on the Redis socket /run/redis/redis.sock")

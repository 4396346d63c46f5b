"""Stream snapshot over TLS (rediss://) against a real TLS redis-server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from redis_dr.errors import AccessDeniedError, ConfigError
from redis_dr.redis.connection import RedisEndpoint, open_client
from redis_dr.redis.info import read_server_facts
from redis_dr.redis.replication import replication_snapshot
from redis_dr.sandbox.ports import free_port, wait_for_port
from redis_dr.sandbox.redis_server import RedisServer
from tests.redis.helpers import check_rdb, populate, write_chunks

pytestmark = pytest.mark.integration


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot make throwaway TLS certificates")
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem"))
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "1", "-subj", "/CN=redis-dr test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "1", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


@pytest.fixture
def tls_server(redis_factory: Callable[..., RedisServer], tmp_path: Path) -> tuple[RedisServer, int, Path]:
    ca, cert, key = make_certs(tmp_path)
    tls_port = free_port()
    config = {
        "tls-port": str(tls_port),
        "tls-cert-file": str(cert),
        "tls-key-file": str(key),
        "tls-ca-cert-file": str(ca),
        "tls-auth-clients": "no",
        "repl-diskless-sync-delay": "0",
    }
    try:
        server = redis_factory(config)
    except Exception as exc:  # a build without TLS refuses the tls-* options
        pytest.skip(f"this redis-server does not support TLS: {exc}")
    wait_for_port(tls_port, 10)
    return server, tls_port, ca


def test_stream_snapshot_over_tls(tls_server: tuple[RedisServer, int, Path], tmp_path: Path) -> None:
    server, tls_port, ca = tls_server
    populate(server, n=100)
    ep = RedisEndpoint.from_url(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}", env={})
    with replication_snapshot(open_client(ep)) as stream:
        rdb = write_chunks(stream, tmp_path / "tls.rdb")
    assert "106 keys read" in check_rdb(rdb)


def test_tls_with_unknown_ca_is_refused(tls_server: tuple[RedisServer, int, Path]) -> None:
    _, tls_port, _ = tls_server
    ep = RedisEndpoint.from_url(f"rediss://127.0.0.1:{tls_port}/0", env={})  # system CAs only
    with (
        pytest.raises(AccessDeniedError, match="TLS handshake"),
        replication_snapshot(open_client(ep)),
    ):
        pass


def test_plain_client_on_the_tls_port_says_tls_is_the_mismatch(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    _, tls_port, _ = tls_server
    client = open_client(RedisEndpoint.from_url(f"redis://127.0.0.1:{tls_port}/0", env={}))
    with pytest.raises(ConfigError) as caught:
        read_server_facts(client)
    assert str(caught.value) == (
        f"Redis at 127.0.0.1:{tls_port} speaks TLS: TLS is probably the mismatch; "
        "use rediss:// (with ?ssl_ca_certs=...) instead of redis://"
    )


def test_tls_client_on_the_plain_port_says_tls_is_the_mismatch(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    server, _, ca = tls_server
    ep = RedisEndpoint.from_url(f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}", env={})
    mismatch = "answers without TLS: TLS is probably the mismatch; use redis://"
    with pytest.raises(ConfigError, match=mismatch):
        read_server_facts(open_client(ep))
    with pytest.raises(ConfigError, match=mismatch), replication_snapshot(open_client(ep)):
        pass

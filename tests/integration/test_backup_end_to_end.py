"""The backup proven end to end: CLI -> flow -> storage -> fetch -> redis-check-rdb -> fresh Redis.

For every storage backend, compression, encryption choice and snapshot mode,
the fetched RDB must load into a new redis-server holding exactly the source's
keys, types, values and TTLs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from cli.demo_sessions import populate_session_store
from redis_dr.redis.rdb import RDB_HEADER_SIZE, parse_rdb_version
from redis_dr.sandbox.redis_server import RedisServer
from tests.fixtures.redis_servers import TEST_SERVER_CONFIG
from tests.integration.cli import run_cli
from tests.integration.datasets import Dataset, assert_holds, check_rdb, read_dataset, start_from_rdb
from tests.redis.helpers import rdb_version_of

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def source() -> Iterator[RedisServer]:
    """A session store in db 0 plus a few keys in db 3, unchanged during the module."""
    with RedisServer(TEST_SERVER_CONFIG) as server:  # no 5 s wait before each diskless SYNC
        populate_session_store(server.client(), sessions=1500, seed=7)
        other = server.client(db=3)
        other.set("feature:flags", b"\x00\x01binary\xff")
        other.set("maintenance", "off", ex=86_400)
        other.rpush("deploys", "v1", "v2", "v3")
        yield server


@pytest.fixture(scope="module")
def source_data(source: RedisServer) -> Dataset:
    """What every restore must hold: the source's keys, read once (the source does not change)."""
    return read_dataset(source.client())


@pytest.fixture(scope="module")
def age_identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


@pytest.mark.parametrize("mode", ["stream", "bgsave"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "age"])
@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_backup_fetch_restore_holds_exactly_the_source(
    source: RedisServer,
    source_data: Dataset,
    storage_url: str,
    compression: str,
    encrypted: bool,
    mode: str,
    age_identity: pyrage.x25519.Identity,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["backup", "--redis-url", source.url, "--storage", storage_url, "--instance", "sessions"]
    args += ["--mode", mode, "--compression", compression]
    if encrypted:
        args += ["--encrypt-to", str(age_identity.to_public())]
        monkeypatch.setenv("REDIS_DR_AGE_IDENTITY", str(age_identity))
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    backup_id = out.strip()

    code, out, err = run_cli(capsys, "list", "--storage", storage_url, "--instance", "sessions", "--json")
    assert code == 0, err
    [manifest] = json.loads(out)
    assert manifest["id"] == backup_id
    assert manifest["mode"] == mode
    assert manifest["files"][0]["compression"] == compression
    assert bool(manifest["files"][0]["encrypted_to"]) is encrypted
    assert manifest["source"]["keyspace"]["3"] == {"keys": 3, "expires": 1}
    assert manifest["source"]["rdb_version"] == rdb_version_of(source)

    output = tmp_path / "restored" / "dump.rdb"
    output.parent.mkdir()  # fetch makes no directories
    code, out, err = run_cli(
        capsys,
        "fetch",
        "--storage",
        storage_url,
        "--instance",
        "sessions",
        "--backup",
        "latest",
        "--output",
        str(output),
    )
    assert code == 0, err
    assert output.stat().st_size == manifest["raw_size"]
    with output.open("rb") as rdb:
        assert parse_rdb_version(rdb.read(RDB_HEADER_SIZE)) == manifest["source"]["rdb_version"]
    check_rdb(output)
    with start_from_rdb(output, tmp_path / "fresh") as fresh:
        keys = assert_holds(source_data, fresh.client())
    assert keys == manifest["source"]["total_keys"]


def test_environment_file_selects_the_instance_by_name(
    redis_factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = redis_factory(password="staging-secret")
    populate_session_store(server.client(), sessions=200, seed=5)
    env_file = tmp_path / "staging.yaml"
    env_file.write_text(
        "environment: staging\n"
        "instances:\n"
        "  sessions:\n"
        f"    redis_url: {server.url}\n"
        "    password: {env: STAGING_REDIS_PASSWORD}\n"
        f"    storage: file://{tmp_path / 'store'}\n"
        "    compression: gzip\n"
        "    labels: {team: web}\n"
    )
    monkeypatch.setenv("STAGING_REDIS_PASSWORD", "staging-secret")
    code, out, err = run_cli(capsys, "backup", "--env-file", str(env_file), "--instance", "sessions")
    assert code == 0, err
    code, listing, err = run_cli(
        capsys, "list", "--env-file", str(env_file), "--instance", "sessions", "--json"
    )
    assert code == 0, err
    [manifest] = json.loads(listing)
    assert manifest["id"] == out.strip()
    assert manifest["environment"] == "staging"
    assert manifest["labels"] == {"team": "web"}
    assert manifest["files"][0]["name"] == "dump.rdb.gz"
    assert "staging-secret" not in listing + err

"""Validation against real backups in real locations: good ones pass every check, damaged ones
are named with what is wrong."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pyrage
import pytest
from prefect.artifacts import Artifact

from redis_dr.backup import commit_backup, store_snapshot
from redis_dr.catalog import Catalog
from redis_dr.config import AGE_IDENTITY_ENV, SecretRef, build_request
from redis_dr.errors import ConfigError
from redis_dr.fetch import identities_from_env, read_file
from redis_dr.manifest import Manifest
from redis_dr.pipeline import Tally
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.sandbox.redis_server import RedisServer
from redis_dr.storage import open_storage
from redis_dr.validate import BackupCheck, ValidateRequest, ValidationFailed, select_backups
from redis_dr.validate_backup import check_backup
from redis_dr.validate_tools import check_aof_dir
from tests.fixtures.targets import TargetServer
from tests.integration.cli import assert_one_clear_error, run_cli
from tests.integration.test_aof_backup import AOF_CONFIG, store_aof

pytestmark = pytest.mark.integration

INSTANCE = "sessions"
KEYS_DB0, KEYS_DB2 = 3000, 5


@pytest.fixture(scope="module")
def source() -> Iterator[RedisServer]:
    """One small server for the module: keys in db 0 (some expiring) and db 2."""
    server = RedisServer({"repl-diskless-sync-delay": "0"}).start()
    client = server.client()
    client.mset({f"session:{n}": os.urandom(64) for n in range(KEYS_DB0 - 10)})
    for n in range(10):
        client.set(f"expiring:{n}", "x", ex=3600)
    client.select(2)
    client.mset({f"other:{n}": n for n in range(KEYS_DB2)})
    yield server
    server.stop()


def take_backup(server: RedisServer, url: str, instance: str = INSTANCE, **fields: object) -> Manifest:
    """A backup by the core functions (the flow adds nothing validation looks at), committed."""
    request = build_request(instance=instance, redis_url=server.url, storage=url, **fields)
    storage = open_storage(url)
    try:
        reservation = Catalog(storage, instance).reserve(datetime.now(UTC))
        snapshot = store_snapshot(request, RedisEndpoint.from_url(server.url), storage, reservation)
        return commit_backup(request, storage, snapshot)
    finally:
        storage.close()


def validate(url: str, manifest: Manifest, identities: list[object] | None = None) -> BackupCheck:
    storage = open_storage(url)
    try:
        return check_backup(storage, manifest, identities or [])
    finally:
        storage.close()


def data_key(manifest: Manifest, index: int = 0) -> str:
    return f"{INSTANCE}/{manifest.id}/{manifest.files[index].name}"


def stored_bytes(url: str, key: str) -> bytes:
    storage = open_storage(url)
    try:
        return storage.get_bytes(key)
    finally:
        storage.close()


def replace_object(url: str, key: str, data: bytes) -> None:
    """Put other bytes under key: written in place in a directory, deleted and put again in a bucket."""
    if url.startswith("file://"):
        path = Path(urlsplit(url).path) / key
        path.chmod(0o600)
        with path.open("r+b") as file:
            file.write(data)
            file.truncate()
        return
    storage = open_storage(url)
    try:
        storage.delete(key)
        storage.put_bytes(key, data)
    finally:
        storage.close()


def flipped_in_the_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]


def test_a_good_backup_passes_every_check(source: RedisServer, storage_url: str) -> None:
    manifest = take_backup(source, storage_url)
    check = validate(storage_url, manifest)
    assert check.ok, check.problems
    assert check.checks == [
        "sha256",
        "decompress",
        "redis-check-rdb",
        f"{KEYS_DB0 + KEYS_DB2:,} keys in 2 dbs",
    ]
    assert check.bytes == manifest.stored_size and check.backup_id == manifest.id


def test_a_corrupted_stored_object_is_named(source: RedisServer, storage_url: str) -> None:
    manifest = take_backup(source, storage_url)
    key = data_key(manifest)
    original = stored_bytes(storage_url, key)
    replace_object(storage_url, key, flipped_in_the_middle(original))
    assert len(stored_bytes(storage_url, key)) == len(original)

    check = validate(storage_url, manifest)
    assert not check.ok
    assert check.problems[0].startswith(
        f"{manifest.id}: stored object dump.rdb.zst: sha256 does not match the manifest (corrupt)"
    ), check.problems


def test_a_truncated_stored_object_is_named(source: RedisServer, storage_url: str) -> None:
    manifest = take_backup(source, storage_url)
    key = data_key(manifest)
    original = stored_bytes(storage_url, key)
    replace_object(storage_url, key, original[: len(original) - 1000])

    check = validate(storage_url, manifest)
    assert check.problems == [
        f"{manifest.id}: stored object dump.rdb.zst has {len(original) - 1000:,} bytes, "
        f"the manifest says {len(original):,} (truncated)"
    ]


def test_a_missing_object_fails(source: RedisServer, tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    manifest = take_backup(source, url)
    (tmp_path / data_key(manifest)).unlink()
    assert validate(url, manifest).problems == [f"{manifest.id}: stored object dump.rdb.zst is missing"]


def test_gzip_and_encrypted_backups_pass_with_the_identity(
    source: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path}"
    key = pyrage.x25519.Identity.generate()
    gzipped = take_backup(source, url, compression="gzip")
    encrypted = take_backup(source, url, encrypt_to=[str(key.to_public())])

    assert validate(url, gzipped).checks[:3] == ["sha256", "decompress", "redis-check-rdb"]
    with pytest.raises(ConfigError, match=f"backup {encrypted.id} is encrypted: set {AGE_IDENTITY_ENV}"):
        validate(url, encrypted)
    monkeypatch.setenv(AGE_IDENTITY_ENV, str(pyrage.x25519.Identity.generate()))
    with pytest.raises(ConfigError, match="holds the identity of none of them") as wrong:
        validate(url, encrypted, identities_from_env())
    assert "AGE-SECRET-KEY" not in str(wrong.value)
    monkeypatch.setenv(AGE_IDENTITY_ENV, str(key))
    check = validate(url, encrypted, identities_from_env())
    assert check.ok and check.checks[:4] == ["sha256", "decrypt", "decompress", "redis-check-rdb"]


def rewrite_backup(root: Path, manifest: Manifest, raw: bytes) -> Manifest:
    """Store `raw` as the backup's (uncompressed) RDB with a manifest whose checksums match it."""
    tally = Tally()
    list(tally.tap([raw]))
    stored = manifest.files[0].model_copy(
        update={"raw_size": tally.size, "raw_sha256": tally.sha256,
                "stored_size": tally.size, "stored_sha256": tally.sha256}
    )  # fmt: skip
    rewritten = manifest.model_copy(update={"files": [stored]})
    for name, data in ((stored.name, raw), ("manifest.json", rewritten.to_json())):
        path = root / INSTANCE / manifest.id / name
        path.chmod(0o600)
        path.write_bytes(data)
    return rewritten


def test_redis_check_rdb_catches_a_bad_rdb_whose_checksums_match(source: RedisServer, tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    manifest = take_backup(source, url, compression="none")
    raw = stored_bytes(url, data_key(manifest))
    bad = rewrite_backup(tmp_path, manifest, flipped_in_the_middle(raw))

    check = validate(url, bad)
    assert "sha256" in check.checks and "redis-check-rdb" not in check.checks
    assert any(problem.startswith(f"{manifest.id}: redis-check-rdb: ") for problem in check.problems), check


def test_key_counts_that_disagree_with_the_manifest_fail(source: RedisServer, tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    manifest = take_backup(source, url)
    counts = manifest.source.rdb_keyspace
    assert counts is not None
    wrong = {**counts, 0: counts[0].model_copy(update={"key_count": KEYS_DB0 + 1})}
    path = tmp_path / INSTANCE / manifest.id / "manifest.json"
    path.chmod(0o600)
    edited = manifest.model_copy(
        update={"source": manifest.source.model_copy(update={"rdb_keyspace": wrong})}
    )
    path.write_bytes(edited.to_json())

    check = validate(url, edited)
    assert check.problems == [
        f"{manifest.id}: key counts differ from the manifest: db0 holds {KEYS_DB0:,} keys "
        f"(10 with an expiry), the manifest says {KEYS_DB0 + 1:,} keys (10 with an expiry)"
    ]
    without = edited.model_copy(update={"source": manifest.source.model_copy(update={"rdb_keyspace": None})})
    assert (
        validate(url, without)
        .checks[-1]
        .startswith(f"{KEYS_DB0 + KEYS_DB2:,} keys in 2 dbs (count could not")
    )


def test_sample_validates_older_backups_and_names_unreadable_manifests(
    source: RedisServer, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}"
    ids = [take_backup(source, url).id for _ in range(4)]
    storage = open_storage(url)
    try:
        sampled = select_backups(storage, INSTANCE, "latest", 2, random.Random(7))
        assert sampled.older == 3 and sampled.unreadable == []
        assert sampled.manifests[0].id == ids[-1] and len(sampled.manifests) == 3
        assert {m.id for m in sampled.manifests[1:]} < set(ids[:-1])
        assert all(validate(url, manifest).ok for manifest in sampled.manifests)

        unreadable_path = tmp_path / INSTANCE / ids[1] / "manifest.json"
        unreadable_path.chmod(0o600)
        unreadable_path.write_text("{not json")
        everything = select_backups(storage, INSTANCE, ids[2], 100, random.Random(7))
    finally:
        storage.close()
    assert [m.id for m in everything.manifests] == [ids[2], ids[0]]
    [unreadable] = everything.unreadable
    assert not unreadable.ok and unreadable.backup_id == ids[1]
    assert unreadable.problems[0].startswith(f"{ids[1]}: unreadable manifest ")


@pytest.fixture
def aof_target(local_target_factory: Callable[..., TargetServer]) -> TargetServer:
    target = local_target_factory(AOF_CONFIG)
    client = target.client()
    client.mset({f"k:{n}": n for n in range(500)})
    client.bgrewriteaof()
    while client.info("persistence")["aof_rewrite_in_progress"]:
        time.sleep(0.02)
    client.mset({f"after:{n}": n for n in range(50)})  # in the incr file
    return target


def test_an_aof_backup_is_checked_by_redis_check_aof(aof_target: TargetServer, tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    manifest, _ = store_aof(aof_target.platform, url)
    work = tmp_path / "work"
    work.mkdir()
    storage = open_storage(url)
    check = check_backup(storage, manifest, [], work_dir=work)
    assert check.ok, check.problems
    assert check.checks[:3] == ["sha256", "decompress", "redis-check-aof"]
    assert check.checks[3].startswith("keys not compared (AOF")
    assert list(work.iterdir()) == []  # the private copy is gone

    # The copied AOF laid out again, its last incr file cut in the middle of a command, and
    # with garbage in the middle: Redis loads the first (aof-load-truncated), not the second.
    aof_dir = tmp_path / "aof"
    aof_dir.mkdir()
    for stored in manifest.files:
        assert stored.original_name is not None
        (aof_dir / stored.original_name).write_bytes(b"".join(read_file(storage, manifest, stored, [])))
    incr = next(aof_dir.glob("*.incr.aof"))
    whole = incr.read_bytes()
    aof_manifest = next(aof_dir.glob("*.manifest"))
    incr.write_bytes(whole[:-7])
    cut = check_aof_dir(aof_manifest, incr.name, len(whole))
    assert cut.ok and "Redis drops at load" in cut.line
    incr.write_bytes(whole[:20] + b"garbage\r\n" + whole[29:])
    damaged = check_aof_dir(aof_manifest, incr.name, len(whole))
    storage.close()
    assert not damaged.ok and damaged.line.startswith("redis-check-aof: ") and "not valid" in damaged.line


def test_cli_validates_every_location_and_fails_naming_the_bad_backup(
    source: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], prefect_harness: None
) -> None:
    good, bad = f"file://{tmp_path / 'good'}", f"file://{tmp_path / 'bad'}"
    for url in (good, bad):
        (tmp_path / urlsplit(url).path.rsplit("/", 1)[1]).mkdir()
    older = take_backup(source, good)
    newest = take_backup(source, good)
    broken = take_backup(source, bad)
    key = data_key(broken)
    replace_object(bad, key, stored_bytes(bad, key)[:-10])

    code, out, err = run_cli(
        capsys, "validate", "--storage", good, "--storage", bad, "--instance", INSTANCE, "--sample", "1"
    )
    assert code == 5, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"OK {newest.id} (sha256, decompress, redis-check-rdb, 3,005 keys in 2 dbs)")
    assert lines[1].startswith(f"OK {older.id} ")
    assert (
        lines[2].startswith(f"FAILED {broken.id}: stored object dump.rdb.zst has ")
        and "(truncated)" in lines[2]
    )
    assert_one_clear_error(err, "1 of 3 backup(s) failed validation", broken.id, "(truncated)")
    table = str(getattr(Artifact.get(f"validate-{INSTANCE}"), "data", ""))
    assert broken.id in table and newest.id in table and "FAILED" in table

    code, out, err = run_cli(capsys, "validate", "--storage", good, "--instance", INSTANCE, "--json")
    assert code == 0, err
    [verdict] = json.loads(out)
    assert verdict["ok"] and verdict["backup_id"] == newest.id and verdict["problems"] == []


def test_a_run_without_the_age_key_fails_with_one_line_and_exit_code_2(
    source: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from flows.validate import validate as validate_flow

    monkeypatch.delenv(AGE_IDENTITY_ENV, raising=False)
    url = f"file://{tmp_path}"
    key = pyrage.x25519.Identity.generate()
    encrypted = take_backup(source, url, encrypt_to=[str(key.to_public())])
    with pytest.raises(ValidationFailed) as failed:
        validate_flow(ValidateRequest(instance=INSTANCE, storage=[url]))
    assert failed.value.exit_code == ConfigError.exit_code
    assert str(failed.value) == (
        f"1 of 1 backup(s) failed validation: {url}: {encrypted.id}: not validated: backup "
        f"{encrypted.id} is encrypted: set {AGE_IDENTITY_ENV} to the age identity (or the path of "
        "its key file) of one of its recipients"
    )
    # The identity named by the request (an environment variable or a Prefect Secret block) is used.
    monkeypatch.setenv("SESSIONS_AGE_KEY", str(key))
    result = validate_flow(
        ValidateRequest(instance=INSTANCE, storage=[url], age_identity=SecretRef(env="SESSIONS_AGE_KEY"))
    )
    assert [check.ok for check in result.checks] == [True]

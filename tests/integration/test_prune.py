"""Prune against real locations (a directory, SeaweedFS S3, fake-gcs): exactly what the dry run
listed is removed; nothing while a manifest is unreadable; orphans and unfinished uploads once
older than the grace, never a backup in progress.

Backups here are small committed objects (no Redis server needed): what a prune reads and
removes is the catalog, the same for any backup.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flows.prune import prune
from redis_dr.catalog import Catalog, Reservation
from redis_dr.errors import IntegrityError
from redis_dr.manifest import Manifest
from redis_dr.prune import LocationRetention, PruneRequest, apply_prune, plan_prune
from redis_dr.retention import PINNED_LABEL, RetentionPolicy
from redis_dr.storage import Storage, open_storage
from redis_dr.storage.file import FileStorage
from redis_dr.storage.s3 import S3Storage
from tests.integration.cli import assert_one_clear_error, run_cli
from tests.manifests import manifest_for
from tests.storage.test_contract import leave_unfinished_upload

pytestmark = pytest.mark.integration

INSTANCE = "sessions"
NEWEST = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(storage_url: str) -> Storage:
    return open_storage(storage_url)


def store_backup(storage: Storage, moment: datetime, labels: dict[str, str] | None = None) -> Manifest:
    """Reserve, store and commit a one-object backup taken at `moment`."""
    catalog = Catalog(storage, INSTANCE)
    backup_id = catalog.reserve(moment).backup_id
    data = f"rdb of {backup_id}".encode()
    storage.put_bytes(catalog.data_key(backup_id, "dump.rdb"), data)
    manifest = manifest_for(backup_id, data, instance=INSTANCE).model_copy(update={"labels": labels or {}})
    catalog.commit(manifest)
    return manifest


def store_uncommitted(storage: Storage, moment: datetime, reserved_at: datetime | None = None) -> str:
    """What a backup that has not committed (yet) leaves: a reservation and a data object."""
    catalog = Catalog(storage, INSTANCE)
    reservation = catalog.reserve(moment)
    if reserved_at is not None:  # as if reserved then (a run that started at that time)
        storage.delete(catalog.reservation_key(reservation.backup_id))
        held = Reservation(**{**reservation.model_dump(), "reserved_at": reserved_at})
        storage.put_bytes(catalog.reservation_key(reservation.backup_id), held.model_dump_json().encode())
    storage.put_bytes(catalog.data_key(reservation.backup_id, "dump.rdb"), b"half a backup")
    return reservation.backup_id


def keys(storage: Storage) -> set[str]:
    return {info.key for info in storage.list()}


def test_a_prune_removes_exactly_what_the_dry_run_listed(store: Storage) -> None:
    backups = [store_backup(store, NEWEST - timedelta(days=days)) for days in range(6)]
    pinned = store_backup(store, NEWEST - timedelta(days=30), {PINNED_LABEL: "audit"})
    policy = RetentionPolicy(keep_last=2)
    now = datetime.now(UTC)

    plan = plan_prune(store, INSTANCE, policy, now)
    listed = [d.backup_id for d in plan.removals]
    assert listed == [m.id for m in backups[2:]]
    assert [d.backup_id for d in plan.decisions if d.keep] == [backups[0].id, backups[1].id, pinned.id]
    assert plan.orphans == [] and plan.in_progress == [] and plan.stale_uploads == []
    before = keys(store)

    result = apply_prune(Catalog(store, INSTANCE), plan)

    assert result.removed == listed
    assert result.skipped == []
    gone = {key for key in before if key.split("/")[1] in listed}
    assert len(gone) == 3 * len(listed)  # reservation, data, manifest
    assert keys(store) == before - gone
    assert result.objects_deleted == len(gone)
    assert [m.id for m in Catalog(store, INSTANCE).list().manifests] == [backups[0].id, backups[1].id, pinned.id]
    again = plan_prune(store, INSTANCE, policy, now)
    assert again.removals == []


def test_nothing_is_removed_while_a_manifest_cannot_be_read(store: Storage) -> None:
    backups = [store_backup(store, NEWEST - timedelta(days=days)) for days in range(4)]
    catalog = Catalog(store, INSTANCE)
    broken = catalog.manifest_key(backups[2].id)
    store.delete(broken)
    store.put_bytes(broken, b'{"id": "20260101T000000Z", "trunc')
    before = keys(store)

    with pytest.raises(IntegrityError) as caught:
        plan_prune(store, INSTANCE, RetentionPolicy(keep_last=1), datetime.now(UTC))

    message = str(caught.value)
    assert message.startswith("nothing is removed from ")
    assert broken in message and "fix or remove it by hand" in message
    assert "\n" not in message
    assert keys(store) == before


def test_orphans_and_unfinished_uploads_older_than_the_grace_go_and_a_backup_in_progress_stays(
    store: Storage,
) -> None:
    real = datetime.now(UTC)
    now = real + timedelta(days=2)  # the prune runs two days after all this was written
    kept = store_backup(store, NEWEST)
    orphan = store_uncommitted(store, NEWEST - timedelta(days=1))
    running = store_uncommitted(store, NEWEST - timedelta(days=2), reserved_at=now - timedelta(hours=1))
    stale_upload = leave_unfinished_upload(store, f"{INSTANCE}/20260105T000000Z/dump.rdb", written=real)
    live_upload = isinstance(store, FileStorage)  # a temp file still written to, under an old reservation
    if live_upload:
        alive = store_uncommitted(store, NEWEST - timedelta(days=3))
        leave_unfinished_upload(store, f"{INSTANCE}/{alive}/dump2.rdb", written=now - timedelta(minutes=5))
    before = keys(store)

    plan = plan_prune(store, INSTANCE, RetentionPolicy(keep_last=1), now)

    assert [d.backup_id for d in plan.decisions] == [kept.id]
    assert [o.backup_id for o in plan.orphans] == [orphan]
    assert sorted(o.backup_id for o in plan.in_progress) == sorted([running] + ([alive] if live_upload else []))
    assert [u.key.split("/")[1] for u in plan.stale_uploads] == (["20260105T000000Z"] if stale_upload else [])

    result = apply_prune(Catalog(store, INSTANCE), plan)

    assert result.orphans_removed == [orphan]
    assert keys(store) == {key for key in before if f"/{orphan}/" not in key}
    assert len(result.uploads_aborted) == len(plan.stale_uploads)
    assert store.stale_uploads(f"{INSTANCE}/20260105T000000Z/", now + timedelta(days=1)) == []
    if isinstance(store, S3Storage):  # the multipart upload is gone from the bucket's own listing
        uploads = store._client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
        assert uploads.get("Uploads", []) == []
    if live_upload:
        assert len(store.stale_uploads(f"{INSTANCE}/{alive}/", now + timedelta(days=1))) == 1


def test_applying_re_checks_the_plan_and_finishes_an_interrupted_removal(tmp_path: object) -> None:
    store = FileStorage(f"{tmp_path}/store")
    newest = store_backup(store, NEWEST)
    interrupted = store_backup(store, NEWEST - timedelta(days=1))
    orphan = store_uncommitted(store, NEWEST - timedelta(days=2))
    catalog = Catalog(store, INSTANCE)
    plan = plan_prune(store, INSTANCE, RetentionPolicy(keep_last=1), datetime.now(UTC) + timedelta(days=2))
    assert [d.backup_id for d in plan.removals] == [interrupted.id]
    assert [o.backup_id for o in plan.orphans] == [orphan]
    store.delete(catalog.manifest_key(interrupted.id))  # an earlier attempt got this far
    data = f"rdb of {orphan}".encode()
    store.delete(catalog.data_key(orphan, "dump.rdb"))
    store.put_bytes(catalog.data_key(orphan, "dump.rdb"), data)
    catalog.commit(manifest_for(orphan, data, instance=INSTANCE))  # the "orphan" was a slow backup

    result = apply_prune(catalog, plan)

    assert result.removed == [interrupted.id]
    assert list(store.list(catalog.backup_prefix(interrupted.id))) == []
    assert result.orphans_removed == []
    assert result.skipped == [f"orphan {orphan}: committed since the plan (it has a manifest now)"]
    assert [m.id for m in catalog.list().manifests] == [newest.id, orphan]


class RecordingStorage(FileStorage):
    """A directory that remembers the order of its deletes."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.deleted: list[str] = []

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


def test_a_backup_loses_its_manifest_first_and_its_reservation_last(tmp_path: object) -> None:
    store = RecordingStorage(f"{tmp_path}/store")
    store_backup(store, NEWEST)
    old = store_backup(store, NEWEST - timedelta(days=1))
    store.put_bytes(f"{INSTANCE}/{old.id}/extra.bin", b"left by an older version")
    plan = plan_prune(store, INSTANCE, RetentionPolicy(keep_last=1), datetime.now(UTC))

    apply_prune(Catalog(store, INSTANCE), plan)

    prefix = f"{INSTANCE}/{old.id}/"
    assert store.deleted[0] == prefix + "manifest.json"
    assert sorted(store.deleted[1:-1]) == [prefix + "dump.rdb", prefix + "extra.bin"]
    assert store.deleted[-1] == prefix + "reservation.json"
    assert list(store.list(prefix)) == []


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_prunes_each_location_with_its_own_policy_and_fails_naming_the_broken_one(
    tmp_path: object,
) -> None:
    first, second = FileStorage(f"{tmp_path}/first"), FileStorage(f"{tmp_path}/second")
    for days in range(3):
        store_backup(first, NEWEST - timedelta(days=days))
        store_backup(second, NEWEST - timedelta(days=days))
    broken = Catalog(first, INSTANCE).manifest_key(backup_id_of(first, 1))
    first.delete(broken)
    first.put_bytes(broken, b"not json")
    request = PruneRequest(
        instance=INSTANCE,
        locations=[
            LocationRetention(url=first.url, policy=RetentionPolicy(keep_last=1)),
            LocationRetention(url=second.url, policy=RetentionPolicy(keep_last=2)),
        ],
        apply=True,
    )
    before = keys(first)

    with pytest.raises(IntegrityError) as caught:
        prune(request)

    message = str(caught.value)
    assert "failed at 1 of 2 location(s)" in message and first.url in message and broken in message
    assert keys(first) == before
    assert [m.id for m in Catalog(second, INSTANCE).list().manifests] == [
        backup_id_of_time(NEWEST),
        backup_id_of_time(NEWEST - timedelta(days=1)),
    ]


def backup_id_of(storage: Storage, position: int) -> str:
    return Catalog(storage, INSTANCE).backup_ids()[position]


def backup_id_of_time(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%SZ}"


def test_prune_refuses_without_a_rule(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    code, out, err = run_cli(capsys, "prune", "--storage", f"file://{tmp_path}", "--instance", INSTANCE)
    assert code == 2 and out == ""
    assert_one_clear_error(err, "would keep everything", "--keep-daily", "--keep-within")
    code, out, err = run_cli(
        capsys, "prune", "--storage", f"file://{tmp_path}", "--instance", INSTANCE, "--keep-within", "1y"
    )
    assert code == 2
    assert_one_clear_error(err, "--keep-within", "'1y' is not understood")


@pytest.mark.usefixtures("prefect_harness")
def test_the_command_lists_then_applies_the_same_removals(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    store = FileStorage(f"{tmp_path}/store")
    ids = [store_backup(store, NEWEST - timedelta(days=days)).id for days in range(4)]
    args = ["prune", "--storage", store.url, "--instance", INSTANCE, "--keep-daily", "2"]

    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert err.strip().splitlines()[-1] == "dry run: 2 of 4 would be removed; pass --apply to remove them"
    lines = out.strip().splitlines()
    assert lines[0].split() == ["BACKUP", "CREATED", "(UTC)", "ACTION", "REASONS"]
    assert [line.split()[0] for line in lines[1:]] == ids
    assert [line.split()[3] for line in lines[1:]] == ["keep", "keep", "remove", "remove"]
    assert "daily 1/2, newest backup" in lines[1]
    assert len(Catalog(store, INSTANCE).list().manifests) == 4

    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["kind"], r["backup_id"], r["action"], r["removed"]) for r in rows] == [
        ("backup", ids[0], "keep", False),
        ("backup", ids[1], "keep", False),
        ("backup", ids[2], "remove", False),
        ("backup", ids[3], "remove", False),
    ]
    assert rows[0]["reasons"] == ["daily 1/2", "newest backup"]
    assert rows[2]["reasons"] == ["no rule keeps it"]
    assert datetime.fromisoformat(rows[0]["created_at"]) == NEWEST

    code, out, err = run_cli(capsys, *args, "--apply", "--json")
    assert code == 0, err
    applied = json.loads(out)
    assert [(r["backup_id"], r["action"], r["removed"]) for r in applied] == [
        (ids[0], "keep", False),
        (ids[1], "keep", False),
        (ids[2], "remove", True),
        (ids[3], "remove", True),
    ]
    assert err.strip().splitlines()[-1] == "removed 2 of 4 backups (6 objects deleted)"
    assert [m.id for m in Catalog(store, INSTANCE).list().manifests] == ids[:2]

    broken = Catalog(store, INSTANCE).manifest_key(ids[1])
    store.delete(broken)
    store.put_bytes(broken, b"garbage")
    before = keys(store)
    code, out, err = run_cli(capsys, *args, "--apply")
    assert code == IntegrityError.exit_code and out == ""
    assert_one_clear_error(err, "nothing is removed", broken, "fix or remove it by hand")
    assert keys(store) == before

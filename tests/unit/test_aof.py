"""The multi-part AOF manifest, read as Redis reads it (src/aof.c, sdssplitargs)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from redis_dr.aof import (
    AofFileType,
    check_aof_server,
    manifest_without_history,
    parse_aof_manifest,
    split_args,
)
from redis_dr.errors import IntegrityError, ServerFailureError, UnsupportedError
from redis_dr.redis.info import ServerFacts

MANIFEST = (
    b"file appendonly.aof.2.base.rdb seq 2 type b\n"
    b"file appendonly.aof.1.incr.aof seq 1 type h\n"
    b"file appendonly.aof.3.incr.aof seq 3 type i\n"
    b"file appendonly.aof.4.incr.aof seq 4 type i\n"
)


def test_the_files_redis_lists() -> None:
    entries = parse_aof_manifest(MANIFEST, where="m")
    assert [(e.name, e.seq, e.type) for e in entries] == [
        ("appendonly.aof.2.base.rdb", 2, AofFileType.BASE),
        ("appendonly.aof.1.incr.aof", 1, AofFileType.HISTORY),
        ("appendonly.aof.3.incr.aof", 3, AofFileType.INCR),
        ("appendonly.aof.4.incr.aof", 4, AofFileType.INCR),
    ]


def test_quoted_names_and_keys_in_any_case_and_order() -> None:
    [entry] = parse_aof_manifest(b'# comment\nTYPE b SEQ 1 FILE "my \\x41of\\n.rdb" extra x\n', where="m")
    assert entry.name == "my Aof\n.rdb" and entry.type is AofFileType.BASE
    assert split_args(b"a 'it\\'s' \"q\\\"d\"") == [b"a", b"it's", b'q"d']


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"file a seq 1 type b", "newline"),
        (b"", "lists no files"),
        (b"\n", "line 1"),
        (b"file a seq 1 type\n", "line 1"),
        (b"file a/b seq 1 type b\n", "not a file name"),
        (b"file a seq 0 type b\n", "positive number"),
        (b"file a seq 1 type z\n", "unknown file type"),
        (b'file "a seq 1 type b\n', "unbalanced quotes"),
        (b'file "a"b seq 1 type b\n', "followed by a space"),
        (b"file a seq 1 type b\nfile c seq 2 type b\n", "2 base files"),
        (b"file a seq 2 type i\nfile c seq 1 type i\n", "out of sequence"),
    ],
)
def test_manifests_redis_would_refuse_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(IntegrityError, match=reason):
        parse_aof_manifest(data, where="m")


def test_history_lines_are_left_out_of_the_copy() -> None:
    copied = manifest_without_history(b"# kept\n" + MANIFEST)
    assert copied == b"# kept\n" + MANIFEST.replace(b"file appendonly.aof.1.incr.aof seq 1 type h\n", b"")


def facts(version: str = "7.0.15", aof: bool = True, status: str = "ok") -> ServerFacts:
    return ServerFacts(
        redis_version=version, role="master", replication_id="x", replication_offset=0, keyspace={},
        used_memory=0, lastsave=datetime.now(UTC), rdb_bgsave_in_progress=False,
        aof_rewrite_in_progress=False, rdb_last_bgsave_status="ok", aof_enabled=aof,
        aof_last_write_status=status,
    )  # fmt: skip


def test_servers_whose_aof_cannot_be_copied_are_refused() -> None:
    check_aof_server(facts(), "h:1")
    with pytest.raises(UnsupportedError, match="Redis 6.2.14 at h:1 keeps its AOF in one file"):
        check_aof_server(facts("6.2.14"), "h:1")
    with pytest.raises(UnsupportedError, match="appendonly no"):
        check_aof_server(facts(aof=False), "h:1")
    with pytest.raises(ServerFailureError, match="aof_last_write_status:err"):
        check_aof_server(facts(status="err"), "h:1")

"""The restore test's pure checks: expiries accounted per database, the live server's tolerance,
and backups chosen by age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from redis_dr.catalog import check_selector, parse_selector_time
from redis_dr.errors import ConfigError
from redis_dr.redis.info import KeyspaceStats
from redis_dr.restore.verify import Result, VerifyReport
from redis_dr.restore_test.checks import check_against_source, check_expiry_accounting


def stats(keys: int, expires: int) -> KeyspaceStats:
    return KeyspaceStats(keys=keys, expires=expires)


@pytest.mark.parametrize(
    ("expected", "actual", "result", "fragment"),
    [
        ({0: stats(100, 10)}, {0: stats(100, 10)}, Result.PASS, "db0: 100 keys"),
        ({0: stats(100, 10)}, {0: stats(96, 6)}, Result.PASS, "4 expired since the backup"),
        ({0: stats(100, 10)}, {0: stats(99, 10)}, Result.FAIL, "89 keys without an expiry, the backup has 90"),
        ({0: stats(100, 10)}, {0: stats(101, 11)}, Result.FAIL, "-1 keys unaccounted for"),
        ({0: stats(5, 0), 3: stats(2, 2)}, {0: stats(5, 0)}, Result.PASS, "db3: 0 keys"),
        ({0: stats(5, 0)}, {0: stats(5, 0), 2: stats(1, 0)}, Result.FAIL, "db2: 1 keys"),
    ],
)
def test_only_expiring_keys_may_be_missing_per_database(
    expected: dict[int, KeyspaceStats], actual: dict[int, KeyspaceStats], result: Result, fragment: str
) -> None:
    report = VerifyReport()
    check_expiry_accounting(report, expected, actual)
    worst = Result.FAIL if report.failures else Result.PASS
    assert worst is result, report.findings
    assert any(fragment in finding.detail for finding in report.findings), report.findings


@pytest.mark.parametrize(
    ("restored", "source", "tolerance", "result"),
    [
        (1000, 1000, 0.0, Result.PASS),
        (950, 1000, 0.05, Result.PASS),
        (949, 1000, 0.05, Result.FAIL),
        (1051, 1000, 0.05, Result.FAIL),
        (0, 0, 0.05, Result.PASS),
        (1, None, 0.05, Result.WARN),
    ],
)
def test_the_live_server_is_compared_within_the_tolerance(
    restored: int, source: int | None, tolerance: float, result: Result
) -> None:
    report = VerifyReport()
    check_against_source(report, restored, source, tolerance, "it did not answer" if source is None else None)
    [finding] = report.findings
    assert finding.result is result and finding.name == "live server"


def test_an_age_selects_the_newest_backup_at_least_that_old() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_selector_time("7d-ago", now) == now - timedelta(days=7)
    assert parse_selector_time("1d12h-ago", now) == now - timedelta(days=1, hours=12)
    assert parse_selector_time("20251015-140000", now) == datetime(2025, 10, 15, 14, tzinfo=UTC)
    with pytest.raises(ConfigError, match="duration 'a week' is not understood"):
        check_selector("a week-ago")
    with pytest.raises(ConfigError, match="nor an age \\(7d-ago\\)"):
        check_selector("last week")

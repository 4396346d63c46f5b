"""Retention: the policy model and restic `forget` semantics in golden tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from redis_dr.retention import RetentionPolicy


def test_policy_defaults_and_description() -> None:
    empty = RetentionPolicy()
    assert not empty.has_rules()
    assert empty.min_keep == 1
    assert empty.keep_pre_restore == timedelta(days=7)
    assert empty.describe() == "no retention rule; min 1"

    policy = RetentionPolicy(keep_last=3, keep_hourly=24, keep_daily=7, keep_within="30d")  # type: ignore[arg-type]
    assert policy.has_rules()
    assert policy.describe() == "last 3, hourly 24, daily 7, within 30d; min 1"
    assert RetentionPolicy(keep_monthly=12, timezone="Europe/Berlin").describe() == (
        "monthly 12; min 1; periods in Europe/Berlin"
    )


def test_policy_round_trips_through_json() -> None:
    policy = RetentionPolicy(keep_within="1d12h", keep_pre_restore="3d", keep_yearly=2)  # type: ignore[arg-type]
    dumped = policy.model_dump(mode="json", exclude_none=True)
    assert dumped == {"keep_yearly": 2, "keep_within": "1d12h", "min_keep": 1, "keep_pre_restore": "3d"}
    assert RetentionPolicy.model_validate(dumped) == policy
    properties = RetentionPolicy.model_json_schema()["properties"]
    assert all(field.get("description") for field in properties.values())


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"keep_last": 0}, "greater than or equal to 1"),
        ({"min_keep": 0}, "greater than or equal to 1"),
        ({"timezone": "Mars/Olympus"}, "IANA"),
        ({"keep_within": "1y"}, "not understood"),
        ({"keep_everything": True}, "Extra inputs are not permitted"),
    ],
)
def test_policy_refuses_bad_fields(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetentionPolicy.model_validate(fields)
    assert words in str(caught.value)

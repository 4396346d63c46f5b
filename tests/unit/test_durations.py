"""Durations: one syntax in, the same short string out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from redis_dr.durations import Duration, format_duration, parse_duration
from redis_dr.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(days=14)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(days=9, hours=3, minutes=4, seconds=5)),
        ("0s", timedelta(0)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_parse_accepts_the_one_syntax(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "1y", "6mo", "1.5h", "12h1d", "1d1d", "30D", "-1d", "d", "1 d"])
def test_parse_refuses_everything_else_naming_the_text(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "30d" in message and "m = minutes" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=30), "30d"),
        (timedelta(days=1, hours=12), "1d12h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=14), "14d"),
        (timedelta(0), "0s"),
        (timedelta(hours=1, seconds=5), "1h5s"),
    ],
)
def test_format_is_short_and_parses_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_format_refuses_negative_and_fractions() -> None:
    with pytest.raises(ConfigError):
        format_duration(timedelta(seconds=-1))
    with pytest.raises(ConfigError):
        format_duration(timedelta(milliseconds=1500))


class _Model(BaseModel):
    grace: Duration


def test_field_reads_strings_and_timedeltas_and_writes_the_short_string() -> None:
    model = _Model.model_validate({"grace": "1d12h"})
    assert model.grace == timedelta(days=1, hours=12)
    assert model.model_dump(mode="json") == {"grace": "1d12h"}
    assert model.model_dump() == {"grace": timedelta(days=1, hours=12)}
    assert _Model.model_validate_json(model.model_dump_json()) == model
    assert _Model(grace=timedelta(hours=24)).model_dump(mode="json") == {"grace": "1d"}
    schema = _Model.model_json_schema()["properties"]["grace"]
    assert schema["type"] == "string"


@pytest.mark.parametrize("value", ["1y", 3600, "P1D", timedelta(seconds=-5)])
def test_field_refuses_other_spellings_with_one_line(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"grace": value})
    assert "units w, d, h, m = minutes, s" in str(caught.value) or "cannot be written" in str(caught.value)

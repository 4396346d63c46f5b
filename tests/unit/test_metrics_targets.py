"""Where metrics go: bad targets refused in one line, flags over the environment file, schedules' max age."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from cli.common import add_metrics_arguments, metrics_from_args
from redis_dr.errors import ConfigError
from redis_dr.metrics.targets import MetricsTargets, check_pushgateway_url

ENV_FILE = """\
environment: staging
metrics:
  pushgateway: http://127.0.0.1:9091
  textfile_dir: /var/lib/node_exporter
instances:
  sessions:
    redis_url: redis://127.0.0.1:6379/0
    storage: [file:///var/backups/redis]
"""


def parse(*argv: str, env_file: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_metrics_arguments(parser)
    args = parser.parse_args(list(argv))
    args.env_file = env_file
    return args


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://host:9091", "is not an http(s) URL"),
        ("http://", "is not an http(s) URL"),
        ("http://host:port", "is not a URL"),
        ("http://host:9091/?x=1", "give only scheme, host, port and path"),
        ("host:9091", "is not an http(s) URL"),
    ],
)
def test_a_bad_pushgateway_is_one_line_naming_it(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_pushgateway_url(url)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cr3t-pw@host:9091",
        "ftp://user:s3cr3t-pw@host:9091",  # refused for its scheme too: the password is not shown
        "http://user:s3cr3t-pw@host:port",  # unparseable port
        "http://host:9091/?token=s3cr3t-pw",
    ],
)
def test_a_secret_in_a_pushgateway_url_is_never_echoed(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_pushgateway_url(url)
    assert "s3cr3t-pw" not in str(caught.value)


def test_flags_name_themselves_when_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        metrics_from_args(parse("--pushgateway", "ftp://x"))
    assert str(caught.value).startswith("--pushgateway: ")
    with pytest.raises(ConfigError) as caught:
        metrics_from_args(parse("--textfile-dir", "relative/dir"))
    assert str(caught.value).startswith("--textfile-dir: ")


def test_a_flag_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="--pushgateway given twice"):
        parse("--pushgateway", "http://a:1", "--pushgateway", "http://b:1")


def test_nothing_given_leaves_it_to_the_worker_environment() -> None:
    assert metrics_from_args(parse()) is None


def test_flags_override_the_environment_file(tmp_path: Path) -> None:
    env_file = tmp_path / "staging.yaml"
    env_file.write_text(ENV_FILE)
    from_file = metrics_from_args(parse(env_file=str(env_file)))
    assert from_file == MetricsTargets(
        pushgateway="http://127.0.0.1:9091", textfile_dir="/var/lib/node_exporter"
    )
    overridden = metrics_from_args(parse("--pushgateway", "http://127.0.0.1:9999", env_file=str(env_file)))
    assert overridden == MetricsTargets(
        pushgateway="http://127.0.0.1:9999", textfile_dir="/var/lib/node_exporter"
    )


def test_the_worker_environment_fills_only_empty_fields() -> None:
    env = {"REDIS_DR_PUSHGATEWAY": "http://127.0.0.1:9091", "REDIS_DR_TEXTFILE_DIR": "/srv/textfiles"}
    assert MetricsTargets().with_defaults(env) == MetricsTargets(
        pushgateway="http://127.0.0.1:9091", textfile_dir="/srv/textfiles"
    )
    given = MetricsTargets(pushgateway="http://127.0.0.1:1", max_age="2h")
    assert given.with_defaults(env) == MetricsTargets(
        pushgateway="http://127.0.0.1:1", textfile_dir="/srv/textfiles", max_age="2h"
    )
    assert MetricsTargets().with_defaults({}).empty
    with pytest.raises(ConfigError, match="is not an http"):
        MetricsTargets().with_defaults({"REDIS_DR_PUSHGATEWAY": "pushgateway:9091"})


def test_each_sink_is_published_on_its_own() -> None:
    both = MetricsTargets(pushgateway="http://127.0.0.1:9091", textfile_dir="/srv/t", max_age="1h")
    assert both.sinks() == [
        MetricsTargets(pushgateway="http://127.0.0.1:9091", max_age="1h"),
        MetricsTargets(textfile_dir="/srv/t", max_age="1h"),
    ]
    assert MetricsTargets().sinks() == []


def test_the_form_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        MetricsTargets.model_validate({"pushgatway": "http://127.0.0.1:9091"})


"""redis.conf as redis-server reads it: quoting, includes, last value wins, arguments."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from redis_dr.errors import ConfigError, NotFoundError
from redis_dr.redis.conf import RedisConfig, parse_config, split_args


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("port 6379", ["port", "6379"]),
        ("  save   900 1  ", ["save", "900", "1"]),
        ('save ""', ["save", ""]),
        ('requirepass "a b\\n\\t\\"\\\\\\x41"', ["requirepass", 'a b\n\t"\\A']),
        ("requirepass 'it\\'s \\n'", ["requirepass", "it's \\n"]),
        ('dir "/var/lib/redis data"', ["dir", "/var/lib/redis data"]),
        ("requirepass caf\u00e9\u00a0bar", ["requirepass", "caf\u00e9\u00a0bar"]),  # NBSP is not a C space
        ("a\tb\x0bc\x0cd", ["a", "b", "c", "d"]),
    ],
)
def test_split_args(line: str, args: list[str]) -> None:
    assert split_args(line) == args


@pytest.mark.parametrize("line", ['a "b', "a 'b", 'a "b"c', "a 'b'c"])
def test_split_args_refuses_bad_quoting(line: str) -> None:
    with pytest.raises(ValueError):
        split_args(line)


def reader(files: dict[str, str]) -> Callable[[str], str]:
    def read(path: str) -> str:
        if path not in files:
            raise NotFoundError(f"{path} does not exist")
        return files[path]

    return read


def test_include_and_last_value_wins() -> None:
    files = {
        "/etc/redis.conf": "port 6379\ninclude /etc/extra.conf\ndbfilename main.rdb\n",
        "/etc/extra.conf": "port 7000\ndbfilename extra.rdb\n",
    }
    config = parse_config("/etc/redis.conf", reader(files))
    assert (config.port, config.get("dbfilename"), config.files) == (
        7000, "main.rdb", ["/etc/redis.conf", "/etc/extra.conf"],
    )  # fmt: skip


def test_glob_include_in_sorted_order() -> None:
    files = {"/etc/redis.conf": "include /etc/conf.d/*.conf\n", "/c/b.conf": "port 2\n", "/c/a.conf": "port 1\n"}
    config = parse_config("/etc/redis.conf", reader(files), glob_paths=lambda pattern: ["/c/b.conf", "/c/a.conf"])
    assert config.port == 2
    assert config.files == ["/etc/redis.conf", "/c/a.conf", "/c/b.conf"]


def test_relative_include_follows_the_directory_redis_is_in() -> None:
    files = {
        "/etc/redis.conf": "include first.conf\ndir data\ninclude second.conf\n",
        "/srv/first.conf": "port 1\n",
        "/srv/data/second.conf": "dbfilename second.rdb\n",
    }
    config = parse_config("/etc/redis.conf", reader(files), cwd="/srv")
    assert (config.port, config.get("dbfilename")) == (1, "second.rdb")
    assert config.layout("/srv").dir == "/srv/data"


def test_missing_include_names_the_file() -> None:
    with pytest.raises(NotFoundError, match="/etc/gone.conf"):
        parse_config("/etc/redis.conf", reader({"/etc/redis.conf": "include /etc/gone.conf\n"}))


def test_include_loop_is_refused() -> None:
    with pytest.raises(ConfigError, match="nested more than"):
        parse_config("/a.conf", reader({"/a.conf": "include /a.conf\n"}))


def test_bad_line_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match="/etc/redis.conf line 2: unbalanced quotes"):
        parse_config("/etc/redis.conf", reader({"/etc/redis.conf": "port 1\nrequirepass \"open\n"}))


def test_lines_end_at_newlines_only() -> None:
    text = "requirepass ab\x1ccd\nport 7\r\n"  # \x1c and \r would be line breaks for str.splitlines()
    config = parse_config("/r.conf", reader({"/r.conf": text}))
    assert (config.requirepass, config.port) == ("ab\x1ccd", 7)


@pytest.mark.parametrize(
    ("text", "save_points"),
    [
        ("", True),  # Redis's default save points
        ('save 900 1\nsave ""\n', False),
        ('save ""\nsave 60 100\n', True),
        ("save 900 1 300 10\n", True),
    ],
)
def test_save_reset(text: str, save_points: bool) -> None:
    assert parse_config("/r.conf", reader({"/r.conf": text})).layout("/").save_points is save_points


def test_apply_args_come_after_the_file() -> None:
    config = parse_config("/r.conf", reader({"/r.conf": "port 6379\nsave 900 1\nappendonly yes\n"}))
    config.apply_args(["--port", "7000", "--save", "", "--bind", "127.0.0.1", "::1", "--appendonly", "no"])
    layout = config.layout("/")
    assert (config.port, config.bind, layout.save_points, layout.appendonly) == (
        7000, ["127.0.0.1", "::1"], False, False,
    )  # fmt: skip


def test_defaults_are_redis_defaults() -> None:
    config = RedisConfig()
    assert (config.port, config.bind, config.requirepass, config.tls_port) == (6379, ["*", "-::*"], None, 0)
    layout = config.layout("/var/lib/redis")
    assert (layout.dir, layout.dbfilename, layout.appendonly, layout.aof_manifest) == (
        "/var/lib/redis", "dump.rdb", False, "appendonlydir/appendonly.aof.manifest",
    )  # fmt: skip


def test_requirepass_not_in_repr() -> None:
    config = parse_config("/r.conf", reader({"/r.conf": "requirepass top-secret-pw\n"}))
    assert config.requirepass == "top-secret-pw"
    assert "top-secret-pw" not in repr(config)


def test_a_file_that_is_not_a_redis_conf_is_refused_without_showing_its_lines() -> None:
    shadow = "root:$6$secret-hash:19000:0:99999:7:::\n"
    with pytest.raises(ConfigError, match=r"/etc/shadow line 1 is not a Redis directive") as caught:
        parse_config("/etc/shadow", lambda path: shadow)
    assert "secret-hash" not in str(caught.value)

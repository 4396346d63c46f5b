"""A checkpoint's snapshot runs without the diskless delay and server-side LZF, and puts both back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from redis_dr.errors import ServerFailureError
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.redis.snapshot_settings import fast_snapshot
from redis_dr.sandbox.redis_server import RedisServer

DEFAULTS = {"repl-diskless-sync-delay": "5", "rdbcompression": "yes"}


def settings(server: RedisServer) -> dict[str, str]:
    client = server.client(decode_responses=True)
    return {name: client.config_get(name)[name] for name in DEFAULTS}


@pytest.fixture
def server(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_factory(dict(DEFAULTS))


def test_applied_for_the_snapshot_and_put_back(server: RedisServer) -> None:
    with fast_snapshot(RedisEndpoint.from_url(server.url, env={})) as refused:
        assert refused is None
        assert settings(server) == {"repl-diskless-sync-delay": "0", "rdbcompression": "no"}
    assert settings(server) == DEFAULTS


def test_put_back_when_the_snapshot_fails(server: RedisServer) -> None:
    with pytest.raises(RuntimeError), fast_snapshot(RedisEndpoint.from_url(server.url, env={})):
        raise RuntimeError("the snapshot broke")
    assert settings(server) == DEFAULTS


def test_a_setting_someone_changed_meanwhile_is_left_as_they_set_it(server: RedisServer) -> None:
    with fast_snapshot(RedisEndpoint.from_url(server.url, env={})):
        server.client().config_set("rdbcompression", "yes")  # an operator, mid-checkpoint
        server.client().config_set("repl-diskless-sync-delay", "9")
    assert settings(server) == {"repl-diskless-sync-delay": "9", "rdbcompression": "yes"}


def test_a_server_that_refuses_config_is_snapshotted_as_it_is(redis_factory: Callable[..., RedisServer]) -> None:
    managed = redis_factory({**DEFAULTS, "rename-command": 'CONFIG ""'})
    with fast_snapshot(RedisEndpoint.from_url(managed.url, env={})) as refused:
        assert refused is not None and "CONFIG refused" in refused


def test_a_setting_that_cannot_be_put_back_is_named_with_the_command_to_run(server: RedisServer) -> None:
    endpoint = RedisEndpoint.from_url(server.url, env={})
    with pytest.raises(ServerFailureError, match=r"run CONFIG SET repl-diskless-sync-delay '5' and CONFIG SET rdbcompression 'yes' on it"), fast_snapshot(endpoint):
        server.client().config_set("requirepass", "now-locked")  # the put-back cannot log in
    server.password = "now-locked"
    server.client().config_set("requirepass", "")
    server.password = None

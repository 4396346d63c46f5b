"""Where a run's metrics go: a Pushgateway, a node_exporter textfile directory, or both.

Given in an environment file (`metrics:`), as a flow parameter, on the command line
(`--pushgateway URL`, `--textfile-dir DIR`), or by the worker's environment
(`REDIS_DR_PUSHGATEWAY`, `REDIS_DR_TEXTFILE_DIR`). A Pushgateway URL carries no
credentials: flow parameters are stored in the Prefect database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from redis_dr.config import field_check
from redis_dr.durations import Duration
from redis_dr.errors import ConfigError
from redis_dr.storage.location import redact_url

PUSHGATEWAY_ENV = "REDIS_DR_PUSHGATEWAY"
TEXTFILE_DIR_ENV = "REDIS_DR_TEXTFILE_DIR"


def check_pushgateway_url(url: str) -> None:
    """An http(s) URL of a Pushgateway, host and port, no credentials; else ConfigError.

    The URL is shown with any credentials and secret-looking query values masked.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"pushgateway {shown!r} is not a URL: write http://host:9091") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "the pushgateway URL holds credentials: they would be stored with the flow's parameters; "
            "put the Pushgateway behind a proxy that needs none, or use the textfile directory"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"pushgateway {shown!r} is not an http(s) URL: write http://host:9091")
    if parts.query or parts.fragment:
        raise ConfigError(f"pushgateway {shown!r}: give only scheme, host, port and path (no ?query or #)")
    del port


def check_textfile_dir(path: str) -> None:
    """An absolute directory path for node_exporter's textfile collector; else ConfigError."""
    if not path.startswith("/") or "\x00" in path or "\n" in path:
        raise ConfigError(f"textfile directory {path!r}: give an absolute path, e.g. /var/lib/node_exporter")


PushgatewayUrl = Annotated[str, AfterValidator(field_check(check_pushgateway_url))]
TextfileDir = Annotated[str, AfterValidator(field_check(check_textfile_dir))]


class MetricsTargets(BaseModel):
    """Where a run's metrics are pushed or written (neither: none are)."""

    model_config = ConfigDict(extra="forbid")

    pushgateway: PushgatewayUrl | None = Field(
        default=None,
        description="Prometheus Pushgateway URL (http://host:9091), no credentials. "
        f"Empty: {PUSHGATEWAY_ENV} of the worker, if set.",
    )
    textfile_dir: TextfileDir | None = Field(
        default=None,
        description="Directory of node_exporter's textfile collector; each run's metrics are written "
        f"there atomically. Empty: {TEXTFILE_DIR_ENV} of the worker, if set.",
    )

    max_age: Duration | None = Field(
        default=None,
        description="How old the last success of this flow may get before an alert says it is overdue "
        "(redis_dr_max_age_seconds; RedisBackupOld for backups). Set per deployment from its schedule "
        "(redis_dr/schedule_gaps.py: its interval plus a margin); empty: not published.",
    )

    @property
    def empty(self) -> bool:
        """Neither a Pushgateway nor a textfile directory."""
        return self.pushgateway is None and self.textfile_dir is None

    def sinks(self) -> list[MetricsTargets]:
        """One MetricsTargets per sink given (each published to, and failing, on its own)."""
        sinks = []
        if self.pushgateway is not None:
            sinks.append(MetricsTargets(pushgateway=self.pushgateway, max_age=self.max_age))
        if self.textfile_dir is not None:
            sinks.append(MetricsTargets(textfile_dir=self.textfile_dir, max_age=self.max_age))
        return sinks

    def describe(self) -> str:
        """'the Pushgateway http://host:9091 and the textfile directory /var/lib/node_exporter'."""
        parts = [f"the Pushgateway {self.pushgateway}"] if self.pushgateway else []
        parts += [f"the textfile directory {self.textfile_dir}"] if self.textfile_dir else []
        return " and ".join(parts) or "nowhere"

    def with_defaults(self, env: Mapping[str, str] | None = None) -> MetricsTargets:
        """Empty fields filled from the worker's environment (checked like the fields)."""
        env = os.environ if env is None else env
        pushgateway = self.pushgateway or env.get(PUSHGATEWAY_ENV) or None
        textfile_dir = self.textfile_dir or env.get(TEXTFILE_DIR_ENV) or None
        if pushgateway is not None:
            check_pushgateway_url(pushgateway)
        if textfile_dir is not None:
            check_textfile_dir(textfile_dir)
        return MetricsTargets(pushgateway=pushgateway, textfile_dir=textfile_dir, max_age=self.max_age)

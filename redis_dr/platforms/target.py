"""Target names as users type them: `local:///etc/redis.conf`, `docker://NAME`,
`compose://PROJECT/SERVICE`, or a `redis://` / `rediss://` URL (replay only)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from redis_dr.errors import ConfigError
from redis_dr.redis.connection import redact_redis_url

_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMPOSE_PART = re.compile(r"^[a-z0-9][a-z0-9_.-]*$", re.IGNORECASE)
TARGET_HELP = (
    "local:///path/to/redis.conf, docker://CONTAINER, compose://PROJECT/SERVICE, "
    "or redis://host:port (replay only)"
)


class TargetKind(StrEnum):
    """The kinds of target."""

    LOCAL = "local"
    DOCKER = "docker"
    COMPOSE = "compose"
    REDIS = "redis"  # a live server reached by URL only: no file access


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target: its kind and what names it (a path, a container, project/service, a URL)."""

    kind: TargetKind
    name: str

    @property
    def has_files(self) -> bool:
        """Whether redis-dr can reach the target's data directory (file strategy, AOF backups)."""
        return self.kind is not TargetKind.REDIS

    def __str__(self) -> str:
        if self.kind is TargetKind.REDIS:
            return redact_redis_url(self.name)
        if self.kind is TargetKind.LOCAL:
            return f"local://{self.name}"
        return f"{self.kind.value}://{self.name}"


def parse_target(text: str) -> TargetSpec:
    """Parse a target; ConfigError (one line, no password shown) when malformed."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ConfigError(f"target {text!r} is not understood: use {TARGET_HELP}")
    scheme = scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return TargetSpec(TargetKind.REDIS, text)
    if scheme == "local":
        if not rest.startswith("/"):
            raise ConfigError(
                f"target {text!r}: give the absolute path of the server's redis.conf, "
                "e.g. local:///etc/redis/redis.conf"
            )
        return TargetSpec(TargetKind.LOCAL, rest)
    if scheme == "docker":
        if not _CONTAINER.match(rest):
            raise ConfigError(f"target {text!r}: docker://CONTAINER takes a container name or id")
        return TargetSpec(TargetKind.DOCKER, rest)
    if scheme == "compose":
        project, slash, service = rest.partition("/")
        if not slash or not _COMPOSE_PART.match(project) or not _COMPOSE_PART.match(service):
            raise ConfigError(
                f"target {text!r}: use compose://PROJECT/SERVICE (as 'docker compose ls' names them)"
            )
        return TargetSpec(TargetKind.COMPOSE, rest)
    shown = redact_redis_url(text) if "@" in text else text
    raise ConfigError(f"target {shown!r} is not understood: use {TARGET_HELP}")

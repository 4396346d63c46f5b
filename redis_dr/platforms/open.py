"""Opening the platform adapter a target names."""

from __future__ import annotations

from pydantic import Field

from redis_dr.platforms.base import Platform
from redis_dr.platforms.local import LocalControl
from redis_dr.platforms.target import TargetKind, parse_target
from redis_dr.redis.connection import RedisEndpoint


class TargetSettings(LocalControl):
    """How to handle a target beyond its name (from an environment file): how a local server is
    stopped and started (checked as LocalControl checks it), and the owner of placed files."""

    owner: str | None = Field(
        default=None,
        pattern=r"^\d+:\d+$",
        description="uid:gid that placed files get, when the platform cannot tell the server's user "
        "(999:999 official image, 1001:1001 Bitnami).",
    )


def open_platform(
    target: str, settings: TargetSettings | None = None, *, connect: RedisEndpoint | None = None
) -> Platform | None:
    """The adapter for `target`; None for a `redis://` URL (no file access).

    `connect`: how to reach its server when the platform cannot tell (an ACL user's password).
    """
    spec = parse_target(target)
    settings = settings or TargetSettings()
    owner = tuple(int(part) for part in settings.owner.split(":")) if settings.owner else None
    if spec.kind is TargetKind.LOCAL:
        from redis_dr.platforms.local import LocalPlatform

        given = settings.systemd_unit or settings.start_command or settings.stop_command
        return LocalPlatform(spec.name, control=settings if given else None, connect=connect)
    if spec.kind in (TargetKind.DOCKER, TargetKind.COMPOSE):
        from redis_dr.platforms.docker import DockerPlatform

        if spec.kind is TargetKind.DOCKER:
            return DockerPlatform.for_container(spec.name, owner=owner)  # type: ignore[arg-type]
        project, _, service = spec.name.partition("/")
        return DockerPlatform.for_compose(project, service, owner=owner)  # type: ignore[arg-type]
    return None

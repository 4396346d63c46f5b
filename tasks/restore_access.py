"""How restore tasks and the CLI reach a restore's target and read its backup: no Prefect import
here, so that the CLI can show the plan while the temporary Prefect API is still starting."""

import dataclasses
import os
from datetime import UTC, datetime
from typing import Any

from redis_dr.config import AGE_IDENTITY_ENV
from redis_dr.platforms.base import Platform
from redis_dr.platforms.open import open_platform
from redis_dr.redis.connection import RedisEndpoint
from redis_dr.restore.placement import Placement
from redis_dr.restore.plan import RestorePlan
from redis_dr.restore.preflight import inspect_target, make_plan
from redis_dr.restore.request import RestoreRequest
from redis_dr.restore.source import SourceRef, choose_backup
from tasks.secrets import age_identities, redis_endpoint, resolve_secret


def target_platform(request: RestoreRequest) -> Platform | None:
    """The platform adapter of the request's target (None for a live server by URL)."""
    if request.target is None:
        return None
    connect = redis_endpoint(request.redis_url, request.password) if request.redis_url else None
    return open_platform(request.target, request.target_settings, connect=connect)


def target_endpoint(request: RestoreRequest, platform: Platform | None) -> RedisEndpoint | None:
    """How to reach the target's server: `redis_url` if given (the target's own URL for
    redis:// targets), else what the platform says; the password from `password` if set."""
    url = request.redis_url or (request.target if platform is None else None)
    if url is not None:
        return redis_endpoint(url, request.password)
    endpoint = platform.endpoint() if platform is not None else None
    if endpoint is not None and request.password is not None:
        endpoint = dataclasses.replace(endpoint, password=resolve_secret(request.password))
    return endpoint


def identities(request: RestoreRequest) -> list[Any]:
    """age identities for encrypted backups: the Secret named in the request, else the environment."""
    return age_identities(request.age_identity)


def find_backup(request: RestoreRequest) -> SourceRef:
    """The backup the request names (a runbook file is read through once to describe it)."""
    return backup_ref(request.backup, list(request.storage), request.instance)


def backup_ref(selector: str, storage: list[str], instance: str) -> SourceRef:
    """The backup `selector` names in the first of `storage` that holds it, small enough to pass on."""
    source = choose_backup(selector, storage, instance)
    try:
        return source.ref()
    finally:
        source.close()


def plan_restore(
    request: RestoreRequest, source: SourceRef, tag: str
) -> tuple[RestorePlan, Placement | None]:
    """Read the target's facts (changing nothing) and write the plan."""
    platform = target_platform(request)
    endpoint = target_endpoint(request, platform)
    facts = inspect_target(platform, endpoint)
    have_identity = request.age_identity is not None or bool(os.environ.get(AGE_IDENTITY_ENV))
    opened = source.open()
    try:
        return make_plan(request, opened, facts, tag=tag, now=datetime.now(UTC), have_identity=have_identity)
    finally:
        opened.close()

"""Resolving secret references: environment variables or Prefect Secret blocks."""

from __future__ import annotations

import os
from typing import Any

from redis_dr.config import PASSWORD_ENV, SecretRef
from redis_dr.errors import ConfigError
from redis_dr.fetch import identities_from_env
from redis_dr.pipeline import parse_identities
from redis_dr.redis.connection import RedisEndpoint


def resolve_secret(ref: SecretRef) -> str:
    """The secret's value; ConfigError naming the reference (never the value) if missing."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise ConfigError(f"the environment variable {ref.env} is not set")
        return value
    from prefect.blocks.system import Secret

    try:
        secret = Secret.load(ref.prefect_secret)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"there is no Prefect Secret block named {ref.prefect_secret!r}") from None
    return str(secret.get())  # type: ignore[union-attr]


def redis_endpoint(url: str, password: SecretRef | None) -> RedisEndpoint:
    """The endpoint for a Redis URL, with its password from the reference or REDIS_PASSWORD."""
    env = dict(os.environ)
    if password is not None:
        env[PASSWORD_ENV] = resolve_secret(password)
    return RedisEndpoint.from_url(url, env=env)


def age_identities(ref: SecretRef | None) -> list[Any]:
    """age identities to decrypt backups: from the referenced secret, else REDIS_DR_AGE_IDENTITY."""
    return parse_identities(resolve_secret(ref)) if ref is not None else identities_from_env()

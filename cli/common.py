"""Arguments and lookups shared by several commands."""

from __future__ import annotations

import argparse
import os

from redis_dr.catalog import Catalog
from redis_dr.config import PASSWORD_ENV, load_environment
from redis_dr.errors import ConfigError
from redis_dr.redis.connection import split_password
from redis_dr.storage import Storage, open_storage


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """--storage / --instance, or --env-file + --instance."""
    parser.add_argument("--instance", required=True, help="instance name (backups are stored under it)")
    parser.add_argument(
        "--storage",
        action="append",
        metavar="URL",
        help="file:///dir, s3://bucket/prefix?..., gs://bucket/prefix",
    )
    parser.add_argument("--env-file", metavar="YAML", help="environment file that describes the instance")


def storage_urls(args: argparse.Namespace) -> list[str]:
    """Storage URLs from --storage, else from the environment file's instance."""
    if args.storage:
        return list(args.storage)
    if args.env_file:
        environment = load_environment(args.env_file)
        config = environment.instances.get(args.instance)
        if config is not None:
            return list(config.storage)
        raise ConfigError(f"no instance {args.instance!r} in {args.env_file}")
    raise ConfigError("say where the backups are: --storage URL or --env-file FILE")


def open_catalog(args: argparse.Namespace) -> tuple[Storage, Catalog]:
    """The primary storage and the instance's catalog in it."""
    storage = open_storage(storage_urls(args)[0])
    return storage, Catalog(storage, args.instance)


def move_password_to_env(url: str) -> str:
    """Take a password out of a Redis URL into REDIS_PASSWORD, so it never travels further.

    Every spelling counts: `user:pw@`, `:pw@`, unencoded `/`, `@` or `:` in it, `?password=`.
    """
    without, password = split_password(url)
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    return without

"""Arguments and lookups shared by several commands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cli.output import say
from redis_dr.catalog import Catalog
from redis_dr.config import PASSWORD_ENV, one_line
from redis_dr.environment import load_environment
from redis_dr.errors import AccessDeniedError, ConfigError, NotFoundError, TransientError
from redis_dr.manifest import Manifest
from redis_dr.metrics.targets import PUSHGATEWAY_ENV, TEXTFILE_DIR_ENV, MetricsTargets
from redis_dr.redis.connection import split_password
from redis_dr.storage import Storage, open_storage


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """--storage / --instance, or --env-file + --instance."""
    parser.add_argument("--instance", required=True, help="instance name (backups are stored under it)")
    parser.add_argument(
        "--storage",
        action="append",
        metavar="URL",
        help="file:///dir, s3://bucket/prefix?..., gs://bucket/prefix (list: one location; "
        "fetch: several are tried in order)",
    )
    parser.add_argument("--env-file", metavar="YAML", help="environment file that describes the instance")


def storage_urls(args: argparse.Namespace) -> list[str]:
    """Storage URLs from --storage, else from the environment file's instance."""
    if args.storage:
        return list(args.storage)
    if args.env_file:
        return load_environment(args.env_file).instance(args.instance).urls
    raise ConfigError("say where the backups are: --storage URL or --env-file FILE")


def open_catalog(args: argparse.Namespace) -> tuple[Storage, Catalog]:
    """The one location a command reads, and the instance's catalog in it.

    Several --storage locations are refused (which one would be meant?); an
    environment file's instance is read at its primary location, and the person
    is told which one and how to read another.
    """
    urls = storage_urls(args)
    if args.storage and len(urls) > 1:
        raise ConfigError("this command reads one location: give a single --storage URL")
    if len(urls) > 1:
        others = ", ".join(urls[1:])
        say(f"reading the primary location {urls[0]} (the others: {others}; pass --storage URL for one)")
    storage = open_storage(urls[0])
    return storage, Catalog(storage, args.instance)


def resolve_anywhere(args: argparse.Namespace) -> tuple[Storage, Manifest]:
    """Find the selected backup in the first location that can answer, saying which were passed over.

    A location that is unreachable, refuses access or does not hold the backup
    is passed over, with one line; one whose manifests cannot be read stops the
    search (a newer backup is never passed over silently for an older one).
    """
    urls = storage_urls(args)
    for position, url in enumerate(urls, start=1):
        storage = open_storage(url)
        try:
            return storage, Catalog(storage, args.instance).resolve(args.backup)
        except (NotFoundError, TransientError, AccessDeniedError) as exc:
            storage.close()
            if position == len(urls):
                raise
            say(f"redis-dr: location {position} of {len(urls)} ({url}): {exc}; trying the next one")
    raise AssertionError("storage_urls returns at least one URL")


def move_password_to_env(url: str) -> str:
    """Take a password out of a Redis URL into REDIS_PASSWORD, so it never travels further.

    Every spelling counts: `user:pw@`, `:pw@`, unencoded `/`, `@` or `:` in it, `?password=`.
    """
    without, password = split_password(url)
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    return without


class OnlyOnce(argparse.Action):
    """A flag that takes one value: given twice, it is refused (argparse would keep the last silently)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is not None:
            raise ConfigError(f"{option_string} given twice: this command takes one (run it once for each)")
        setattr(namespace, self.dest, values)


def flag_line(exc: ValidationError, flags: Mapping[str, str]) -> str:
    """The first problem as one line naming the flag its field came from ('--max-lag: duration ...')."""
    error = exc.errors()[0]
    location = error["loc"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not location:
        return message  # about the request as a whole: it names what it is about
    flag = flags.get(str(location[0]))
    return one_line(exc) if flag is None else f"{flag}: {message}"


#: The flag each field of MetricsTargets comes from.
METRICS_FLAGS = {"pushgateway": "--pushgateway", "textfile_dir": "--textfile-dir"}


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """--pushgateway URL and --textfile-dir DIR: where the run's metrics go."""
    group = parser.add_argument_group(
        "metrics", f"where the run's metrics go (default: the environment file's metrics, else "
        f"{PUSHGATEWAY_ENV} / {TEXTFILE_DIR_ENV}); a sink that fails is a warning, never the run's failure",
    )  # fmt: skip
    group.add_argument(
        "--pushgateway", metavar="URL", action=OnlyOnce, help="Prometheus Pushgateway, e.g. http://host:9091"
    )
    group.add_argument(
        "--textfile-dir", metavar="DIR", action=OnlyOnce,
        help="node_exporter's textfile collector directory (files written atomically)",
    )  # fmt: skip


def metrics_from_args(args: argparse.Namespace) -> MetricsTargets | None:
    """The environment file's metrics with the flags over them; None when neither says anything
    (the flow then asks the environment variables). A bad flag is one line naming it."""
    base = load_environment(args.env_file).metrics if getattr(args, "env_file", None) else MetricsTargets()
    given = {field: getattr(args, field) for field in METRICS_FLAGS if getattr(args, field, None) is not None}
    if not given and base == MetricsTargets():
        return None
    try:
        return MetricsTargets.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        raise ConfigError(flag_line(exc, METRICS_FLAGS)) from None

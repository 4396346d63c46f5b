"""Parsing storage URLs: `file:///abs/path`, `s3://bucket/prefix?...`, `gs://bucket/prefix?...`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from redis_dr.errors import ConfigError

#: Query options each scheme accepts; anything else is a typo and refused.
OPTIONS: Mapping[str, frozenset[str]] = {
    "file": frozenset(),
    "s3": frozenset({"region", "endpoint", "storage_class", "profile", "part_size", "page_size"}),
    "gs": frozenset({"endpoint", "project", "storage_class", "part_size", "page_size"}),
}
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,220}[A-Za-z0-9]$")
_SIZE = re.compile(r"^(\d+)\s*(|b|k|kib|m|mib|g|gib)$", re.IGNORECASE)
_SECRET_WORDS = ("secret", "password", "token", "key", "credential", "signature")


def parse_size(text: str, name: str = "size") -> int:
    """Parse '5242880', '5MiB', '5M' or '512KiB' into bytes."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ConfigError(f"invalid {name} {text!r}: use bytes or a size like '16MiB'")
    unit = match.group(2).lower()[:1]
    return int(match.group(1)) << {"": 0, "b": 0, "k": 10, "m": 20, "g": 30}[unit]


def redact_url(url: str) -> str:
    """Return url without userinfo and with secret-looking query values replaced by '***'."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = [
        (k, "***" if any(w in k.lower() for w in _SECRET_WORDS) else _without_userinfo(v))
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return parts._replace(netloc=netloc, query=urlencode(query, safe=":/")).geturl()


def _without_userinfo(value: str) -> str:
    """A URL-valued option (endpoint=http://user:pw@host) with its credentials masked."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if "@" not in parts.netloc:
        return value
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


@dataclass(frozen=True)
class StorageLocation:
    """A parsed storage URL.

    `bucket_or_path` is the bucket name (s3, gs) or the absolute directory (file).
    `prefix` is '' or ends with '/'. `options` holds the query parameters.
    """

    scheme: str
    bucket_or_path: str
    prefix: str = ""
    options: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, url: str) -> StorageLocation:
        """Parse url or raise ConfigError with a one-line message."""
        shown = redact_url(url)
        if any(ord(char) < 0x20 or char == "\x7f" for char in url):
            raise ConfigError(f"storage URL {shown!r} holds a control character (a newline?)")
        try:
            parts = urlsplit(url.strip())
        except ValueError as exc:
            raise ConfigError(f"malformed storage URL {shown}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in OPTIONS:
            raise ConfigError(
                f"unsupported storage URL {shown}: use file:///abs/path, s3://bucket/prefix "
                "or gs://bucket/prefix"
            )
        if "@" in parts.netloc:
            raise ConfigError(
                f"storage URL {shown} contains credentials: remove them and use the "
                "SDK's usual sources (environment, profile, instance role)"
            )
        if parts.fragment:
            raise ConfigError(f"storage URL {shown} must not have a '#' fragment")
        options = _parse_options(scheme, parts.query, shown)
        if scheme == "file":
            path = unquote(parts.path)
            if "\0" in path:
                raise ConfigError(f"storage URL {shown!r} holds a NUL byte (%00): no path can")
            return cls(scheme, _file_path(parts.netloc, path, shown), "", options)
        bucket = parts.netloc
        if not bucket:
            raise ConfigError(f"storage URL {shown} has no bucket: use {scheme}://bucket/prefix")
        if not _BUCKET.match(bucket):
            raise ConfigError(f"storage URL {shown}: {bucket!r} is not a valid bucket name")
        return cls(scheme, bucket, _prefix(unquote(parts.path), shown), options)

    @property
    def url(self) -> str:
        """The canonical URL (options sorted, no secrets since none are accepted)."""
        if self.scheme == "file":
            base = "file://" + quote(self.bucket_or_path)
        else:
            base = f"{self.scheme}://{self.bucket_or_path}/{quote(self.prefix)}"
        query = urlencode(sorted(self.options.items()), safe=":/")
        return f"{base}?{query}" if query else base


def _parse_options(scheme: str, query: str, shown: str) -> dict[str, str]:
    pairs = parse_qsl(query, keep_blank_values=True)
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in OPTIONS[scheme]:
            allowed = ", ".join(sorted(OPTIONS[scheme])) or "none"
            raise ConfigError(f"storage URL {shown}: unknown option {key!r} (allowed: {allowed})")
        if key in options:
            raise ConfigError(f"storage URL {shown}: option {key!r} given twice")
        if not value:
            raise ConfigError(f"storage URL {shown}: option {key!r} has no value")
        options[key] = value
    if "endpoint" in options:
        endpoint = urlsplit(options["endpoint"])
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise ConfigError(f"storage URL {shown}: endpoint must look like http://host:port")
        if "@" in endpoint.netloc:
            raise ConfigError(
                f"storage URL {shown}: the endpoint holds credentials: remove them and use the "
                "SDK's usual sources (environment, profile, instance role)"
            )
    for name in ("part_size", "page_size"):
        if name in options:
            parse_size(options[name], name)
    return options


def _file_path(netloc: str, path: str, shown: str) -> str:
    if netloc not in ("", "localhost") or not path.startswith("/"):
        raise ConfigError(f"file URL {shown} must name an absolute path: file:///abs/path")
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ConfigError(f"file URL {shown} must not contain '.' or '..'")
    return "/" + "/".join(segments)


def _prefix(path: str, shown: str) -> str:
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ConfigError(f"storage URL {shown}: prefix must not contain '.' or '..'")
    return "/".join(segments) + "/" if segments else ""

"""Redis endpoints parsed from URLs, and redis-py clients opened from them.

The password never appears in `repr()`, `redacted()` or any error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_dr.errors import ConfigError

PASSWORD_ENV = "REDIS_PASSWORD"
CertReqs = Literal["required", "optional", "none"]
_SCHEMES = ("redis", "rediss", "unix")
_TLS_OPTIONS = {"ssl_ca_certs", "ssl_cert_reqs"}
_CERT_REQS: dict[str, CertReqs] = {"required": "required", "optional": "optional", "none": "none"}


@dataclass(frozen=True)
class RedisEndpoint:
    """Where a Redis server listens and how to log in; build it with `from_url`."""

    scheme: Literal["redis", "rediss", "unix"]
    host: str = ""
    port: int = 6379
    path: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: CertReqs = "required"

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str] | None = None) -> RedisEndpoint:
        """Parse `redis://[user[:pw]@]host:port[/db]`, `rediss://...?ssl_ca_certs=..`, `unix:///path`.

        The password comes from the URL, else from `REDIS_PASSWORD` in `env`
        (default: the process environment), else there is none.
        """
        env = os.environ if env is None else env
        shown = _redact_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"malformed Redis URL {shown}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(f"unsupported Redis URL scheme in {shown}: use redis://, rediss:// or unix://")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is None:
            password = env.get(PASSWORD_ENV) or None
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if scheme == "unix":
            if not parts.path:
                raise ConfigError(f"Redis URL {shown} has no socket path: use unix:///path/to.sock")
            db = _parse_db(query.pop("db", "0"), shown)
            _reject_unknown(query, set(), shown)
            return cls("unix", path=parts.path, db=db, username=username, password=password)
        if not parts.hostname:
            raise ConfigError(f"Redis URL {shown} has no host: use redis://host:port/db")
        db = _parse_db(parts.path.lstrip("/") or "0", shown)
        if scheme == "redis":
            _reject_unknown(query, set(), shown)
            return cls(
                "redis",
                host=parts.hostname,
                port=port or 6379,
                db=db,
                username=username,
                password=password,
            )
        _reject_unknown(query, _TLS_OPTIONS, shown)
        reqs = query.get("ssl_cert_reqs", "required").lower()
        if reqs not in _CERT_REQS:
            raise ConfigError(f"ssl_cert_reqs={reqs!r} in {shown}: use required, optional or none")
        return cls(
            "rediss",
            host=parts.hostname,
            port=port or 6379,
            db=db,
            username=username,
            password=password,
            ssl_ca_certs=query.get("ssl_ca_certs"),
            ssl_cert_reqs=_CERT_REQS[reqs],
        )

    @property
    def address(self) -> str:
        """`host:port` or the socket path, for messages."""
        if self.scheme == "unix":
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def redacted(self) -> str:
        """The endpoint as a URL with the password shown as `***` (safe for logs)."""
        user = quote(self.username, safe="") if self.username else ""
        auth = f"{user}:***@" if self.password else (f"{user}@" if user else "")
        if self.scheme == "unix":
            return f"unix://{auth}{self.path}" + (f"?db={self.db}" if self.db else "")
        url = f"{self.scheme}://{auth}{self.address}/{self.db}"
        opts = []
        if self.scheme == "rediss":
            if self.ssl_ca_certs:
                opts.append(f"ssl_ca_certs={quote(self.ssl_ca_certs)}")
            if self.ssl_cert_reqs != "required":
                opts.append(f"ssl_cert_reqs={self.ssl_cert_reqs}")
        return url + ("?" + "&".join(opts) if opts else "")

    def __str__(self) -> str:
        return self.redacted()


def open_client(
    endpoint: RedisEndpoint, *, socket_timeout: float = 30.0, connect_timeout: float = 5.0
) -> redis.Redis:
    """A redis-py client for `endpoint` (bytes responses, TCP keepalive, bounded timeouts).

    redis-py's own retries are off: retries belong to the Prefect tasks only.
    """
    kwargs: dict[str, Any] = {
        "retry": Retry(NoBackoff(), 0),
        "db": endpoint.db,
        "username": endpoint.username,
        "password": endpoint.password,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    if endpoint.scheme == "unix":
        return redis.Redis(unix_socket_path=endpoint.path, **kwargs)
    kwargs.update(host=endpoint.host, port=endpoint.port, socket_keepalive=True)
    if endpoint.scheme == "rediss":
        kwargs.update(
            ssl=True,
            ssl_ca_certs=endpoint.ssl_ca_certs,
            ssl_cert_reqs=endpoint.ssl_cert_reqs,
            ssl_check_hostname=endpoint.ssl_cert_reqs == "required",
        )
    return redis.Redis(**kwargs)


def _parse_db(text: str, shown: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"Redis URL {shown}: database {text!r} is not a number")
    return int(text)


def _reject_unknown(query: dict[str, str], allowed: set[str], shown: str) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        hint = f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} in Redis URL {shown}{hint}")


def _redact_url(url: str) -> str:
    """Hide whatever sits between `user:` and `@` in a possibly malformed URL."""
    return re.sub(r"(//[^/@:]*:)[^@/]*@", r"\1***@", url)


def endpoint_of(client: redis.Redis) -> RedisEndpoint:
    """Rebuild the endpoint a redis-py client points at (for messages and ACL hints)."""
    kw = client.connection_pool.connection_kwargs
    common: dict[str, Any] = {
        "db": int(kw.get("db") or 0),
        "username": kw.get("username"),
        "password": kw.get("password"),
    }
    if kw.get("path"):
        return RedisEndpoint("unix", path=str(kw["path"]), **common)
    tls = "ssl" in getattr(client.connection_pool.connection_class, "__name__", "").lower()
    return RedisEndpoint(
        "rediss" if tls else "redis",
        host=str(kw.get("host", "localhost")),
        port=int(kw.get("port", 6379)),
        **common,
    )

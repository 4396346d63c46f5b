"""Redis endpoints parsed from URLs, and redis-py clients opened from them.

The password never appears in `repr()`, `redacted()` or any error message.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_dr.errors import ConfigError

PASSWORD_ENV = "REDIS_PASSWORD"
CertReqs = Literal["required", "optional", "none"]
_SCHEMES = ("redis", "rediss", "unix")
_TLS_OPTIONS = {"ssl_ca_certs", "ssl_cert_reqs"}
_QUERY_OPTIONS = {"db", "username", "password"}
_KNOWN_OPTIONS = _QUERY_OPTIONS | _TLS_OPTIONS
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

        As redis-py does, `?db=`, `?username=` and `?password=` are accepted too
        (they win over the URL's path and user part). A password may hold
        unencoded `/`, `@`, `:`. The password comes from the URL, else from
        `REDIS_PASSWORD` in `env` (default: the process environment), else there is none.
        """
        env = os.environ if env is None else env
        pieces = _pieces(url)
        query = _parse_query(pieces.query)
        # A password in the query may hold an unencoded '&': whatever follows it could be part of
        # it, so no message shows the query (its option names or values) then.
        masked = "password" in query
        shown = _shown(pieces, with_query=not masked) if pieces.scheme else redact_redis_url(url)
        hint = _AMPERSAND_HINT if masked else ""
        scheme = pieces.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(f"unsupported Redis URL {shown}: use redis://, rediss:// or unix://")
        allowed = _QUERY_OPTIONS | (_TLS_OPTIONS if scheme == "rediss" else set())
        _reject_unknown(query, allowed, shown, hint)
        user, password = pieces.credentials()
        username = query.pop("username", None) or user
        password = query.pop("password", None) or password or env.get(PASSWORD_ENV) or None
        if scheme == "unix":
            if not pieces.location.startswith("/"):
                raise ConfigError(f"Redis URL {shown} has no socket path: use unix:///path/to.sock")
            db = _parse_db(query.pop("db", "0"), shown, hint)
            return cls("unix", path=unquote(pieces.location), db=db, username=username, password=password)
        host, port, path_db = _parse_location(pieces.location, shown)
        db = _parse_db(query["db"], shown, hint) if "db" in query else _parse_db(path_db, shown, "")
        if scheme == "redis":
            return cls("redis", host=host, port=port, db=db, username=username, password=password)
        reqs = query.get("ssl_cert_reqs", "required").lower()
        if reqs not in _CERT_REQS:
            value = "" if masked else f"={reqs!r}"
            raise ConfigError(f"ssl_cert_reqs{value} in {shown}: use required, optional or none{hint}")
        ca_certs = query.get("ssl_ca_certs")
        if ca_certs is not None:
            _check_ca_file(ca_certs, shown if masked else None)
        return cls(
            "rediss",
            host=host,
            port=port,
            db=db,
            username=username,
            password=password,
            ssl_ca_certs=ca_certs,
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


class _SSLConnection(redis.SSLConnection):
    """redis-py's TLS connection, with the handshake bounded by the connect timeout.

    redis-py lets the handshake wait for the read timeout (30 s): a `rediss://`
    URL that points at a plain server, which never answers a ClientHello, would
    hang that long on every attempt.
    """

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> ssl.SSLSocket:
        sock.settimeout(self.socket_connect_timeout)
        wrapped: ssl.SSLSocket = super()._wrap_socket_with_ssl(sock)  # type: ignore[no-untyped-call]
        wrapped.settimeout(self.socket_timeout)
        return wrapped


#: Seconds a client waits to connect, and then for each reply (tasks set their timeouts above these).
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 30.0


def open_client(
    endpoint: RedisEndpoint,
    *,
    socket_timeout: float = REPLY_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> redis.Redis:
    """A redis-py client for `endpoint` (bytes responses, TCP keepalive, bounded timeouts).

    redis-py's own retries are off: retries belong to the Prefect tasks only.
    A TLS handshake is bounded by `connect_timeout`.
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
        pool = redis.ConnectionPool(
            connection_class=_SSLConnection,
            ssl_ca_certs=endpoint.ssl_ca_certs,
            ssl_cert_reqs=endpoint.ssl_cert_reqs,
            ssl_check_hostname=endpoint.ssl_cert_reqs == "required",
            **kwargs,
        )
        return redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
    return redis.Redis(**kwargs)


def tls_mismatch(endpoint: RedisEndpoint, timeout: float = 3.0) -> str | None:
    """Say so if the server at `endpoint` speaks the other protocol than the URL's scheme.

    A `rediss://` endpoint is asked PING in plain text: a RESP reply (`+PONG`,
    `-NOAUTH ...`) proves a plain server. A `redis://` endpoint is offered a TLS
    handshake (no certificate checks, nothing sent after it): a completed
    handshake or a TLS alert proves a TLS port. Anything else proves nothing.
    """
    if endpoint.scheme == "rediss" and _answers_resp(endpoint, timeout):
        return (
            f"Redis at {endpoint.address} answers without TLS: TLS is probably the mismatch; "
            "use redis:// instead of rediss://"
        )
    if endpoint.scheme == "redis" and _speaks_tls(endpoint, timeout):
        return (
            f"Redis at {endpoint.address} speaks TLS: TLS is probably the mismatch; "
            "use rediss:// (with ?ssl_ca_certs=...) instead of redis://"
        )
    return None


def _answers_resp(endpoint: RedisEndpoint, timeout: float) -> bool:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-WRONGPASS"))


def _speaks_tls(endpoint: RedisEndpoint, timeout: float) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=endpoint.host),
        ):
            return True
    except ssl.SSLError as exc:
        return "ALERT" in str(exc).upper()  # the server answered in TLS, then refused us
    except OSError:
        return False


@dataclass(frozen=True)
class _Pieces:
    """A Redis URL cut into its raw pieces; cutting never fails (see `_pieces`)."""

    scheme: str
    userinfo: str | None
    location: str  # host[:port][/db], or the socket path
    query: str

    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password) from the user part, percent-decoded; empty ones are None."""
        if self.userinfo is None:
            return None, None
        user, colon, password = self.userinfo.partition(":")
        return unquote(user) or None, (unquote(password) or None) if colon else None


def _pieces(url: str) -> _Pieces:
    """Cut a Redis URL into scheme, user part, location and query, tolerating unencoded secrets.

    urlsplit ends the user part at the first `/`, `?` or `#`, so a password such
    as `a/b@c` spills into the path (and into messages). Here the user part ends
    at the last `@` that is followed by a well-formed location; `#` is an
    ordinary character (Redis URLs have no fragments).
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return _Pieces("", None, url, "")
    kind = scheme.lower()
    head, _, query = rest.partition("?")
    if rest.startswith("/") or _is_location(kind, head):
        return _Pieces(scheme, None, head, query)
    ats = [i for i, char in enumerate(rest) if char == "@"]
    for at in ats[::-1]:
        location, _, query = rest[at + 1 :].partition("?")
        if _is_location(kind, location):
            return _Pieces(scheme, rest[:at], location, query)
    if ats:  # malformed: all up to the last '@' still counts as the user part, so it is never shown
        location, _, query = rest[ats[-1] + 1 :].partition("?")
        return _Pieces(scheme, rest[: ats[-1]], location, query)
    return _Pieces(scheme, None, head, rest.partition("?")[2])


_HOST_PORT_DB = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/:@\[\]]+)(?::(?P<port>[^/]*))?(?P<db>/[^/]*)?")
_LOOKS_LIKE_LOCATION = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s/:@\[\]]+)(:\d*)?(/\d*)?")


def _is_location(scheme: str, text: str) -> bool:
    if scheme == "unix":
        return text.startswith("/")
    return _LOOKS_LIKE_LOCATION.fullmatch(text) is not None


def _parse_location(location: str, shown: str) -> tuple[str, int, str]:
    """host, port and the database text of `host[:port][/db]`."""
    match = _HOST_PORT_DB.fullmatch(location)
    if match is None:
        raise ConfigError(f"Redis URL {shown} has no valid host: use redis://host:port/db")
    port_text = match.group("port")
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ConfigError(f"malformed Redis URL {shown}: port {port_text!r} is not a number from 1 to 65535")
    host = match.group("host").strip("[]")
    return host, int(port_text or 6379), (match.group("db") or "/").lstrip("/") or "0"


def _parse_query(query: str) -> dict[str, str]:
    return {key: value for key, value in parse_qsl(query, keep_blank_values=True)}


_AMPERSAND_HINT = (
    "; its ?password= may hold an unencoded '&': percent-encode it (as %26) or use REDIS_PASSWORD"
)


def _parse_db(text: str, shown: str, hint: str) -> int:
    """The database number; `hint` set means the text may be part of a password: never shown."""
    if not text.isdigit():
        what = "its database" if hint else f"database {text!r}"
        raise ConfigError(f"Redis URL {shown}: {what} is not a number{hint}")
    return int(text)


def _reject_unknown(query: dict[str, str], allowed: set[str], shown: str, hint: str) -> None:
    """ConfigError for options not in `allowed`; named only when the query holds no password."""
    unknown = sorted(set(query) - allowed)
    if unknown:
        names = "" if hint else f" {', '.join(unknown)}"
        raise ConfigError(
            f"unknown option(s){names} in Redis URL {shown} (allowed: {', '.join(sorted(allowed))}){hint}"
        )


_CA_HINT = "give the path of the PEM file of the CA that signed the Redis server's certificate"


def _check_ca_file(path: str, masked_url: str | None) -> None:
    """ConfigError unless `path` is a readable file; `masked_url` set: name it, not the path."""
    what = f"the ssl_ca_certs file of Redis URL {masked_url}" if masked_url else f"ssl_ca_certs file {path}"
    hint = _AMPERSAND_HINT if masked_url else ""
    if os.path.isdir(path):
        raise ConfigError(f"{what} is a directory: {_CA_HINT}{hint}")
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist: {_CA_HINT}{hint}") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"{what} cannot be read ({reason}): {_CA_HINT}{hint}") from None


def redact_redis_url(url: str) -> str:
    """A Redis URL safe to show: the password (in the user part or `?password=`) becomes `***`.

    Works on malformed URLs too; it is the one function used wherever a Redis URL is shown.
    """
    pieces = _pieces(url)
    if not pieces.scheme:
        return "<a Redis URL that is not scheme://...>" if "@" in url or "pass" in url.lower() else url
    return _shown(pieces, with_query=True)


def _shown(pieces: _Pieces, *, with_query: bool) -> str:
    """The URL of `pieces` with its password as `***`; its query too if `with_query`."""
    auth = ""
    if pieces.userinfo is not None:
        user, colon, _ = pieces.userinfo.partition(":")
        auth = f"{user}:***@" if colon else f"{user}@"
    query = _redact_query(pieces.query) if with_query else ""
    return f"{pieces.scheme}://{auth}{pieces.location}" + (f"?{query}" if query else "")


def _redact_query(query: str) -> str:
    """Replace the value of `password=` by `***`, and every value after it too.

    An unencoded '&' in the password makes its tail look like more options: known
    option names after it stay (with `***` values), unknown ones are dropped.
    """
    out: list[str] = []
    hiding = False
    for item in query.split("&") if query else []:
        key = item.partition("=")[0].lower()
        if key == "password":
            hiding = True
            out.append("password=***")
        elif hiding:
            if key in _KNOWN_OPTIONS:
                out.append(f"{key}=***")
        else:
            out.append(item)
    return "&".join(out)


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): for moving it into REDIS_PASSWORD.

    A URL with `?password=` is checked first (ConfigError, its query never shown): once the
    password is split off, the tail of one with an unencoded '&' would look like options.
    """
    pieces = _pieces(url)
    _, password = pieces.credentials()
    query = parse_qsl(pieces.query, keep_blank_values=True)
    in_query = [value for key, value in query if key == "password"]
    if password is None and not in_query:
        return url, None
    if in_query:  # check it now: without its password, a bad option could be a password's tail
        RedisEndpoint.from_url(url, env={})
    user = pieces.userinfo.partition(":")[0] if pieces.userinfo is not None else ""
    rest = pieces.query
    if in_query:
        kept = [(key, value) for key, value in query if key != "password"]
        rest = urlencode(kept, safe="/:")
    auth = f"{user}@" if user else ""
    without = f"{pieces.scheme}://{auth}{pieces.location}" + (f"?{rest}" if rest else "")
    return without, in_query[-1] if in_query else password


def has_password(url: str) -> bool:
    """Whether a Redis URL holds a password (user part or `?password=`), in any spelling."""
    return split_password(url)[1] is not None


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

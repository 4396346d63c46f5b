"""Translate redis-py and socket exceptions into the redis-dr error tree, one line each."""

from __future__ import annotations

import socket
import ssl
from typing import Literal

import redis.exceptions as rex

from redis_dr.errors import (
    AccessDeniedError,
    ConfigError,
    PermanentError,
    RedisDRError,
    ServerFailureError,
    TransientError,
    UnsupportedError,
)
from redis_dr.redis.connection import RedisEndpoint, tls_mismatch

Mode = Literal["stream", "bgsave"]

#: ACL rules a backup user needs, per snapshot mode.
PERMISSIONS: dict[Mode, str] = {
    "stream": "+sync +replconf +ping +info",
    "bgsave": "+bgsave +lastsave +info +config|get",
}
_OTHER_MODE: dict[Mode, Mode] = {"stream": "bgsave", "bgsave": "stream"}
_STREAM_COMMANDS = {"SYNC", "PSYNC", "REPLCONF"}
_BGSAVE_COMMANDS = {"BGSAVE", "LASTSAVE", "CONFIG"}
#: Actions during which a failure may be the first contact with the server (where a TLS mismatch shows).
_FIRST_CONTACT = {"connect", "INFO", "PING"}
#: getaddrinfo answers that say the name does not exist (EAI_AGAIN, a DNS outage, stays transient).
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def translate(
    exc: BaseException, endpoint: RedisEndpoint, action: str, *, mode: Mode | None = None
) -> RedisDRError:
    """Map `exc`, raised while doing `action` (e.g. "SYNC", "BGSAVE"), to one clear error.

    `mode` selects which ACL permissions a NOPERM message names; by default it
    is guessed from the command in `action`.
    """
    if isinstance(exc, RedisDRError):
        return exc
    where = endpoint.address
    text = _first_line(exc)
    upper = text.upper()
    mode = mode or _guess_mode(action)

    if isinstance(exc, rex.NoPermissionError) or upper.startswith("NOPERM"):
        return AccessDeniedError(_noperm_message(where, action, mode))
    if (
        isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError)
        or upper.startswith(("WRONGPASS", "NOAUTH"))
        or "INVALID PASSWORD" in upper
        or "INVALID USERNAME-PASSWORD" in upper
    ):
        code = "NOAUTH" if "NOAUTH" in upper or "AUTHENTICATION REQUIRED" in upper else "WRONGPASS"
        return AccessDeniedError(
            f"Redis at {where} refused the password ({code}): check REDIS_PASSWORD or the URL"
        )
    if "DB INDEX IS OUT OF RANGE" in upper:
        return ConfigError(
            f"Redis at {where} has no database {endpoint.db}: use a database number below the "
            "server's 'databases' setting"
        )
    bad_input = _bad_address(exc, endpoint)
    if bad_input is not None:
        return bad_input
    if action in _FIRST_CONTACT and _may_be_tls_mismatch(exc, endpoint):
        hint = tls_mismatch(endpoint)
        if hint is not None:
            return ConfigError(hint)
    if isinstance(exc, rex.BusyLoadingError) or upper.startswith("LOADING"):
        return TransientError(f"Redis at {where} is still loading its dataset: try again shortly")
    if upper.startswith("MISCONF"):
        return ServerFailureError(
            f"Redis at {where} REFUSES WRITES (MISCONF): its last background save failed; "
            "writes fail until a save succeeds: check the server log and its disk now"
        )
    if "UNKNOWN COMMAND" in upper or "UNKNOWN SUBCOMMAND" in upper:
        return UnsupportedError(_unsupported_message(where, action, mode))
    if isinstance(exc, rex.ResponseError):
        return ServerFailureError(f"Redis at {where} refused {action}: {text}")
    if isinstance(exc, ssl.SSLError) or "SSL" in upper or "CERTIFICATE" in upper:
        return AccessDeniedError(
            f"TLS handshake with Redis at {where} failed ({text}): check ssl_ca_certs and the "
            "server certificate"
        )
    if isinstance(exc, rex.TimeoutError | socket.timeout | TimeoutError):
        return TransientError(f"cannot reach Redis at {where}: timed out during {action}")
    if isinstance(exc, rex.ConnectionError | OSError):
        return TransientError(f"cannot reach Redis at {where}: {_reason(exc, text)}")
    if isinstance(exc, rex.RedisError):
        return TransientError(f"Redis at {where} failed during {action}: {text}")
    return PermanentError(f"unexpected error during {action} on Redis at {where}: {text}")


def _bad_address(exc: BaseException, endpoint: RedisEndpoint) -> PermanentError | None:
    """A socket path that does not exist (or may not be opened) or a host name that does not resolve."""
    for err in _chain(exc):
        if isinstance(err, FileNotFoundError) and endpoint.scheme == "unix":
            return ConfigError(
                f"there is no Redis socket {endpoint.path}: check the unix:// path in the Redis URL"
            )
        if isinstance(err, PermissionError) and endpoint.scheme == "unix":
            return AccessDeniedError(
                f"permission denied on the Redis socket {endpoint.path}: run as a user that may open it"
            )
        if isinstance(err, socket.gaierror) and err.errno in _NO_SUCH_NAME:
            return ConfigError(
                f"the host name {endpoint.host!r} does not resolve: check the host in the Redis URL"
            )
    return None


def _may_be_tls_mismatch(exc: BaseException, endpoint: RedisEndpoint) -> bool:
    """Failures that a TLS client meeting a plain server (or the reverse) produces while connecting."""
    chain = _chain(exc)
    if endpoint.scheme == "rediss":
        return any(isinstance(err, ssl.SSLError) or "handshake" in str(err).lower() for err in chain)
    if endpoint.scheme == "redis":
        return any(
            isinstance(err, ConnectionResetError | rex.InvalidResponse)
            or "closed by server" in str(err).lower()
            for err in chain
        )
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes / contexts, outermost first."""
    chain: list[BaseException] = [exc]
    while True:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt is None or nxt in chain:
            return chain
        chain.append(nxt)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _guess_mode(action: str) -> Mode | None:
    command = action.split()[0].upper() if action.strip() else ""
    if command in _STREAM_COMMANDS:
        return "stream"
    if command in _BGSAVE_COMMANDS:
        return "bgsave"
    return None


def _noperm_message(where: str, action: str, mode: Mode | None) -> str:
    if mode is None:
        need = f"{PERMISSIONS['stream']} (stream mode) or {PERMISSIONS['bgsave']} (bgsave mode)"
    else:
        need = f"{PERMISSIONS[mode]} for {mode} mode"
    return f"NOPERM: Redis at {where} refused {action}: the backup user needs {need}"


def _unsupported_message(where: str, action: str, mode: Mode | None) -> str:
    command = action.split()[0].upper() if action.strip() else action
    if command == "CONFIG":
        return (
            f"Redis at {where} does not allow CONFIG (managed Redis?): give the dump file path "
            "explicitly (--dump-path) or use --mode stream"
        )
    hint = f"use --mode {_OTHER_MODE[mode]} or" if mode else "use"
    return f"Redis at {where} does not allow {command} (managed Redis?): {hint} the provider's snapshots"


def _reason(exc: BaseException, text: str) -> str:
    for err in _chain(exc):
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(err, socket.gaierror):
            return f"name resolution failed ({err.strerror or err})"
        if isinstance(err, ConnectionResetError | BrokenPipeError):
            return "connection reset by the server"
        if isinstance(err, OSError) and err.strerror:
            return err.strerror.lower()  # not redis-py's "Error N connecting to <address>." again
    lower = text.lower()
    if "refused" in lower:
        return "connection refused"
    if "name or service not known" in lower or "name resolution" in lower or "nodename" in lower:
        return "name resolution failed"
    if "closed" in lower or "reset" in lower:
        return "connection closed by the server"
    return text

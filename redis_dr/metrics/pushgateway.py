"""The Pushgateway sink: each group POSTed under its own grouping key (pushadd).

POST replaces, in the group, only the metric names sent: a failed run sends its
attempt and failure gauges and leaves the last success as it was (PUT would drop
it). Every request has a timeout. Errors are one line naming the Pushgateway:
unreachable, a timeout or a 5xx is a TransientError (retried by the task); a 4xx
is permanent (a wrong path, refused access, metrics it rejects).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, pushadd_to_gateway

from redis_dr.errors import (
    AccessDeniedError,
    NotFoundError,
    PermanentError,
    RedisDRError,
    TransientError,
)
from redis_dr.metrics.model import JOB, Families, MetricGroup

#: Seconds for one push: connect, send and the answer.
PUSH_TIMEOUT = 10.0


def push_groups(url: str, groups: Sequence[MetricGroup], timeout: float = PUSH_TIMEOUT) -> int:
    """POST every group to the Pushgateway at `url`; the number pushed. Stops at the first error."""
    for group in groups:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(Families(group.families))
        pushadd_to_gateway(
            url, job=JOB, registry=registry, grouping_key=group.labels, timeout=timeout,
            handler=_handler(url),
        )  # fmt: skip
    return len(groups)


def _handler(gateway: str) -> Callable[..., Callable[[], None]]:
    """prometheus_client's handler hook: the request, with our timeouts and our errors."""

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        def send() -> None:
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                raise status_error(gateway, exc.code, exc.reason, _first_line(exc)) from None
            except TimeoutError:
                waited = timeout if timeout is not None else PUSH_TIMEOUT
                raise TransientError(f"metrics not pushed to {gateway}: no answer in {waited:g} s") from None
            except urllib.error.URLError as exc:
                raise TransientError(f"metrics not pushed to {gateway}: {_reason(exc.reason)}") from None
            except OSError as exc:  # a connection reset while reading the answer
                raise TransientError(f"metrics not pushed to {gateway}: {_reason(exc)}") from None

        return send

    return handler


def status_error(gateway: str, status: int, reason: object, body: str) -> RedisDRError:
    """The error for an HTTP status: 5xx transient, 401/403 access, 404 a wrong path, other 4xx permanent."""
    said = f": {body}" if body else ""
    line = f"metrics not pushed to {gateway}: HTTP {status} {reason}{said}"
    if status >= 500:
        return TransientError(line)
    if status in (401, 403):
        return AccessDeniedError(f"{line} (the Pushgateway needs no credentials from redis-dr: "
                                 "allow this host, or use --textfile-dir)")  # fmt: skip
    if status == 404:
        return NotFoundError(f"{line} (is the URL the Pushgateway's, with its path prefix if any?)")
    return PermanentError(line)


def _first_line(exc: urllib.error.HTTPError) -> str:
    """The first line of an error answer (the Pushgateway says why), at most 200 characters."""
    try:
        text = exc.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


def _reason(reason: object) -> str:
    """'connection refused', 'name not known', ... from a socket error."""
    if isinstance(reason, TimeoutError):
        return "no answer in time"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[0].lower() + reason.strerror[1:]
    return str(reason) or type(reason).__name__

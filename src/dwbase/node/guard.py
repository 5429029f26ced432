"""Connection guards: a cap on open connections, and deadlines for request heads and bodies.

uvicorn closes a kept-alive connection once it has been idle ``timeout_keep_alive`` seconds,
but it waits forever for a connection that never sends a request, for a request head sent a
byte at a time and for a body that never ends, and it accepts connections until the process
has no file descriptor left. :func:`guarded_protocol` is uvicorn's own HTTP protocol
(httptools) with three additions:

* **cap**: a connection that would exceed ``limits.max_connections`` is answered 503
  ``unavailable`` (``Retry-After: 1``) and closed at once, so its descriptor comes back;
* **head deadline**: a request's head (request line and headers) must be complete within
  ``limits.header_timeout_s`` of the connection opening, or of the request's first byte on
  a kept-alive connection;
* **body deadline**: its body must be complete within ``limits.body_timeout_s`` of the head.

A missed deadline is answered 408 ``request_timeout`` (when no answer has started) and the
connection is closed; the route that was reading the body sees the client leave.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("dwbase.node")

_FD_HEADROOM = 256  # descriptors for the store, ask-worker pipes, logs and the listener


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float
    body_timeout_s: float


def _raw_response(status: str, code: str, message: str, details: dict[str, Any]) -> bytes:
    body = orjson.dumps({"error": {"code": code, "message": message, "details": details}})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    )
    if status.startswith("503"):
        head += "retry-after: 1\r\n"
    return head.encode("ascii") + b"\r\n" + body


class _Refusals:
    """Counts connections refused at the cap; logs at most one warning per 10 s."""

    def __init__(self) -> None:
        self.total = 0
        self._unlogged = 0
        self._logged_at: float | None = None

    def note(self, now: float, cap: int) -> None:
        self.total += 1
        self._unlogged += 1
        if self._logged_at is None or now - self._logged_at >= 10.0:
            log.warning(
                "connections refused: limits.max_connections reached",
                extra={"fields": {"limit": cap, "refused": self._unlogged}},
            )
            self._logged_at = now
            self._unlogged = 0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the cap and deadlines of :class:`ConnectionLimits`."""

    limits = ConnectionLimits(max_connections=1000, header_timeout_s=10.0, body_timeout_s=30.0)
    refusals = _Refusals()  # one per server: guarded_protocol() makes a class per server

    # The deadline's phase ("head": waiting for a request head; "body": reading a body;
    # "idle": between requests, where uvicorn's keep-alive timeout applies), when the phase
    # began, and its timer. A timer is armed only when a read ends inside a request (and at
    # connect), so a request that arrives whole costs no timer at all.
    _phase = "idle"
    _since = 0.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.limits.max_connections
        if len(self.connections) > cap:
            self.refusals.note(self.loop.time(), cap)
            self.transport.write(
                _raw_response(
                    "503 Service Unavailable",
                    "unavailable",
                    f"the node holds {cap} connections, its limit limits.max_connections; "
                    "retry later or reuse a connection",
                    {"limit": "limits.max_connections", "value": cap, "retry_after": 1},
                )
            )
            self.transport.close()
            return
        self._phase, self._since = "head", self.loop.time()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._phase != "idle" and self._deadline is None and not self.transport.is_closing():
            self._arm()

    # httptools parser callbacks: where a request's head and body begin and end.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # else: the first request's deadline runs from the connect
            self._phase, self._since = "head", self.loop.time()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._disarm()
        self._phase, self._since = "body", self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._phase = "idle"

    def _arm(self) -> None:
        head = self._phase == "head"
        limit = self.limits.header_timeout_s if head else self.limits.body_timeout_s
        delay = max(0.0, self._since + limit - self.loop.time())
        self._deadline = self.loop.call_later(delay, self._expired, self._phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = self.cycle
        # Answer only where no response is under way: before the first request, after the
        # last one, or while the current one is still being read.
        if cycle is None or cycle.response_complete or not cycle.response_started:
            key = "header" if phase == "head" else "body"
            limit = self.limits.header_timeout_s if phase == "head" else self.limits.body_timeout_s
            transport.write(
                _raw_response(
                    "408 Request Timeout",
                    "request_timeout",
                    f"the request {phase} did not arrive within limits.{key}_timeout_s "
                    f"({limit:g} s); the node closed the connection",
                    {"limit": f"limits.{key}_timeout_s", "value": limit},
                )
            )
        transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """A :class:`GuardedHttpToolsProtocol` class for uvicorn's ``http=`` with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "refusals": _Refusals()},
    )


def ensure_descriptors(max_connections: int) -> int:
    """Raise the soft open-file limit so ``max_connections`` fit, up to the hard limit.

    Returns how many connections fit (``max_connections``, or fewer with a warning when the
    hard limit is too low), so the node refuses connections with 503 rather than failing to
    open its own files.
    """
    if sys.platform == "win32":  # no RLIMIT_NOFILE there
        return max_connections
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + _FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        fits = max(1, soft - _FD_HEADROOM)
        log.warning(
            "open-file limit too low for limits.max_connections; capping connections",
            extra={"fields": {"nofile": soft, "max_connections": max_connections, "cap": fits}},
        )
        return fits
    return max_connections

"""``dwbase.Client``: the library's methods over HTTP, with the same types and errors.

>>> import dwbase
>>> db = dwbase.Client("http://127.0.0.1:8080", token="dwb_...")   # doctest: +SKIP
>>> aid = db.remember("demo", "agent-1", "observation", {"text": "disk full"})  # doctest: +SKIP
>>> db.ask("demo", "what is full?").hits[0].atom.id == aid  # doctest: +SKIP
True

Errors arrive as the same classes the engine raises (``CapabilityDeniedError``,
``NotFoundError``, ``RateLimitedError`` with ``retry_after`` ...); a node that cannot be
reached raises ``UnavailableError``. :class:`AsyncClient` offers the same methods, awaited.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from .errors import (
    DWBaseError,
    InternalError,
    UnavailableError,
    error_from_dict,
)
from .ids import new_id
from .model import Answer, Atom, AtomFilter, Hit
from .results import AtomId
from .stream import SubscriptionStats

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"


# Writes carry ids chosen here, so a write whose answer was lost (a reset connection, a
# timeout) is sent again: the node stores nothing twice and answers the same ids.
WRITE_RETRIES = 2
RETRY_BACKOFF_S = (0.05, 0.25)


@dataclass(frozen=True, slots=True)
class _Req(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any, httpx.Headers], T]
    body: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0  # how often to resend after a transport error (idempotent requests only)


def _atom(d: Any) -> Atom:
    return Atom.from_dict(d)


def _atoms(d: Any, _h: httpx.Headers | None = None) -> list[Atom]:
    return [_atom(a) for a in d]


def _answer(d: Any, _h: httpx.Headers) -> Answer:
    return Answer(
        world=d["world"],
        text=d["text"],
        supporting_atoms=[_atom(a) for a in d["supporting_atoms"]],
        hits=[
            Hit(
                atom=_atom(h["atom"]),
                score=float(h["score"]),
                parts={k: float(v) for k, v in h["parts"].items()},
                sources=tuple(h["sources"]),
            )
            for h in d["hits"]
        ],
        warnings=list(d["warnings"]),
    )


def _id(d: Any, _h: httpx.Headers) -> AtomId:
    # A held write answers an object that says so (docs/node.md), a normal one the id string.
    return AtomId.from_wire(d)


def _ids(d: Any, _h: httpx.Headers) -> list[AtomId]:
    return [AtomId.from_wire(i) for i in d]


def _with_id(atom: Mapping[str, Any]) -> dict[str, Any]:
    """``atom`` with an id of its own, so that sending it again stores nothing twice."""
    out = dict(atom)
    if out.get("id") is None:
        out["id"] = new_id()
    return out


def _raw(d: Any, _h: httpx.Headers) -> Any:
    return d


def _none(_d: Any, _h: httpx.Headers) -> None:
    return None


def _stats(d: Any, _h: httpx.Headers) -> SubscriptionStats:
    return SubscriptionStats(
        handle=d["handle"],
        queued_count=d["queued_count"],
        dropped_count=d["dropped_count"],
        last_event_ms=d["last_event_ms"],
        warnings=list(d["warnings"]),
        cursor=d.get("cursor"),
    )


def _filter(flt: AtomFilter | Mapping[str, Any] | None, **extra: Any) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if isinstance(flt, AtomFilter):
        out = {k: v for k, v in flt.to_dict().items() if v not in (None, [])}
    elif flt is not None:
        out = dict(flt)
    for key, value in extra.items():
        if value is not None:
            out[key] = list(value) if isinstance(value, list | tuple) else value
    return out or None


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _body(req: _Req[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"params": _drop_none(req.params)}
    if req.body is not None:
        # NaN/Infinity are sent as written so the node, like the engine, rejects them with
        # invalid_input (httpx's own encoder would raise ValueError here instead).
        out["content"] = json.dumps(req.body, separators=(",", ":")).encode()
        out["headers"] = {"content-type": "application/json"}
    return out


def _raise_for(resp: httpx.Response) -> None:
    try:
        body = resp.json()
        err = body["error"]
        if not isinstance(err, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        cls = UnavailableError if resp.status_code in (502, 503, 504) else InternalError
        raise cls(
            f"node answered {resp.status_code} without an error body", status=resp.status_code
        ) from None
    details = err.get("details")
    if isinstance(details, dict):
        details.pop("request_id", None)  # keep the engine's details; the id is in the header
    raise error_from_dict(err)


class _SSE:
    """Incremental Server-Sent Events parser: feed lines, get atoms at event ends."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self._data: list[str] = []
        self._event = ""

    def feed(self, line: str) -> Atom | None:
        if line == "":
            data, self._data = self._data, []
            event, self._event = self._event, ""
            if not data:
                return None
            body = json.loads("\n".join(data))
            if event == "error":  # the node ended the stream (e.g. the token was revoked)
                raise error_from_dict(body["error"])
            return _atom(body)
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "id":
            self.last_id = value
        elif key == "event":
            self._event = value
        elif key == "data":
            self._data.append(value)
        return None


class Client:
    """A DWBase node over HTTP: the same methods, types and errors as the engine.

    ``token`` is the bearer token (``dwb_<id>_<secret>``); on an authenticated node the
    worker is the token's, whatever ``worker`` says.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = dict(headers or {})
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url, headers=self._headers, timeout=timeout, transport=transport
        )

    # ------------------------------------------------------------------ plumbing

    def _send(self, req: _Req[T]) -> T:
        for attempt in range(req.retries + 1):
            try:
                resp = self._http.request(req.method, req.path, **_body(req))
                break
            except httpx.TransportError as exc:
                if attempt == req.retries:
                    raise UnavailableError(
                        f"cannot reach DWBase node at {self.url}: {exc}"
                    ) from exc
                time.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
        if resp.status_code >= 400:
            _raise_for(resp)
        return req.parse(resp.json(), resp.headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def remember(
        self,
        world: str,
        worker: str | None = None,
        kind: str = "observation",
        payload: Mapping[str, Any] | None = None,
        *,
        payload_json: str | None = None,
        importance: float = 0.5,
        timestamp: str = "",
        vector: Sequence[float] | None = None,
        flags: Sequence[str] = (),
        labels: Sequence[str] = (),
        links: Sequence[Any] = (),
    ) -> AtomId:
        body = _drop_none(
            {
                "id": new_id(),
                "world": world,
                "worker": worker,
                "kind": kind,
                "payload": dict(payload) if payload is not None else None,
                "payload_json": payload_json,
                "importance": importance,
                "timestamp": timestamp,
                "vector": list(vector) if vector is not None else None,
                "flags": list(flags),
                "labels": list(labels),
                "links": [_link(x) for x in links],
            }
        )
        return self._send(_Req("POST", "/remember", _id, body, retries=WRITE_RETRIES))

    def remember_atom(self, new_atom: Mapping[str, Any]) -> AtomId:
        """Store one NewAtom; an ``id`` is chosen here unless it has one (see remember_batch)."""
        return self._send(_Req("POST", "/remember", _id, _with_id(new_atom), retries=WRITE_RETRIES))

    def remember_batch(self, atoms: Sequence[Mapping[str, Any]]) -> list[AtomId]:
        """All atoms are stored, or none.

        Each atom without an ``id`` gets one chosen here (a UUIDv7), and a batch whose answer
        is lost to a transport error is sent again, up to ``WRITE_RETRIES`` times: the node
        stores nothing twice and answers the same ids. Held writes come back with
        ``aid.held`` set.
        """
        body = {"atoms": [_with_id(a) for a in atoms]}
        return self._send(_Req("POST", "/remember/batch", _ids, body, retries=WRITE_RETRIES))

    # ------------------------------------------------------------------ reads

    def ask(
        self,
        world: str,
        text: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        limit: int = 10,
        as_of: str | None = None,
        rank: str = "hybrid",
        weights: Mapping[str, Any] | None = None,
        current_only: bool = False,
        vector: Sequence[float] | None = None,
    ) -> Answer:
        body = _drop_none(
            {
                "world": world,
                "text": text,
                "filter": _filter(filter),
                "limit": limit,
                "as_of": as_of,
                "rank": rank,
                "weights": dict(weights) if weights is not None else None,
                "current_only": current_only,
                "vector": list(vector) if vector is not None else None,
            }
        )
        return self._send(_Req("POST", "/ask", _answer, body))

    def replay(
        self,
        world: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        flags: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        as_of: str | None = None,
        order: str = "append",
        current_only: bool = False,
        after: str | None = None,
    ) -> list[Atom]:
        flt = _filter(
            filter,
            kinds=kinds,
            labels=labels,
            flags=flags,
            since=since,
            until=until,
            limit=limit,
        )
        body = _drop_none(
            {
                "world": world,
                "filter": flt,
                "as_of": as_of,
                "order": order,
                "current_only": current_only,
                "after": after,
            }
        )
        return self._send(_Req("POST", "/replay", _atoms, body))

    def get(self, atom_id: str) -> Atom:
        """The atom; ``NotFoundError`` if absent or not readable with this token."""
        path = "/atoms/" + urllib.parse.quote(atom_id, safe="")
        return self._send(_Req("GET", path, lambda d, _h: _atom(d)))

    inspect = get

    def list_worlds(self, *, include_archived: bool = False) -> list[str]:
        return self._send(
            _Req("GET", "/worlds", _raw, params={"include_archived": str(include_archived).lower()})
        )

    # ------------------------------------------------------------------ worlds & policy

    def create_world(
        self, world: str, *, description: str | None = None, labels: Sequence[str] = ()
    ) -> AtomId:
        body = _drop_none(
            {"action": "create", "world": world, "description": description, "labels": list(labels)}
        )
        return self._send(_Req("POST", "/worlds/manage", _id, body))

    def archive_world(self, world: str) -> AtomId:
        return self._send(
            _Req("POST", "/worlds/manage", _id, {"action": "archive", "world": world})
        )

    def resume_world(self, world: str) -> AtomId:
        return self._send(_Req("POST", "/worlds/manage", _id, {"action": "resume", "world": world}))

    def set_policy(
        self,
        world: str,
        *,
        retention_days: int | None = None,
        retention_min_days: int | None = None,
        min_importance: float | None = None,
        replication_allow: Sequence[str] | None = None,
        replication_deny: Sequence[str] | None = None,
    ) -> AtomId:
        body = _drop_none(
            {
                "world": world,
                "retention_days": retention_days,
                "retention_min_days": retention_min_days,
                "min_importance": min_importance,
                "replication_allow": list(replication_allow) if replication_allow else None,
                "replication_deny": list(replication_deny) if replication_deny else None,
            }
        )
        return self._send(_Req("POST", "/worlds/policy", _id, body))

    # ------------------------------------------------------------------ observe

    def observe_start(
        self,
        world: str | None = None,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        after: str | None = None,
        capacity: int | None = None,
        drop_policy: str = "drop_oldest",
    ) -> str:
        body = _filter(filter) or {}
        if world is not None:
            body["world"] = world
        body.update(_drop_none({"after": after, "capacity": capacity, "drop_policy": drop_policy}))
        return self._send(_Req("POST", "/observe/start", lambda d, _h: str(d["handle"]), body))

    def observe_poll(self, handle: str, max: int = 100) -> list[Atom]:
        return self._send(_Req("POST", "/observe/poll", _atoms, {"handle": handle, "max": max}))

    def observe_stop(self, handle: str) -> None:
        return self._send(_Req("POST", "/observe/stop", _none, {"handle": handle}))

    def observe_stats(self, handle: str) -> SubscriptionStats:
        return self._send(_Req("GET", f"/observe/{handle}/stats", _stats))

    def observe_stream(
        self,
        world: str | None = None,
        *,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        last_event_id: str | None = None,
        max_events: int | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[Atom]:
        """Atoms as the node streams them (Server-Sent Events), resuming after
        ``last_event_id``; ends after ``max_events`` atoms or ``timeout_s`` idle seconds."""
        params = _drop_none(
            {
                "world": world,
                "kinds": list(kinds) if kinds else None,
                "labels": list(labels) if labels else None,
                "max_events": max_events,
                "timeout_s": timeout_s,
            }
        )
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            with self._http.stream(
                "GET", "/observe/stream", params=params, headers=headers, timeout=None
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for(resp)
                parser = _SSE()
                for line in resp.iter_lines():
                    atom = parser.feed(line)
                    if atom is not None:
                        yield atom
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach DWBase node at {self.url}: {exc}") from exc

    # ------------------------------------------------------------------ index & operators

    def index_status(self, world: str | None = None) -> list[dict[str, Any]]:
        return self._send(_Req("GET", "/index/status", _raw, params={"world": world}))

    def index_rebuild(self, world: str | None = None) -> dict[str, Any]:
        return self._send(_Req("POST", "/index/rebuild", _raw, _drop_none({"world": world})))

    def quarantine_list(self, world: str | None = None, *, limit: int = 1000) -> list[Atom]:
        return self._send(
            _Req("GET", "/quarantine", _atoms, params={"world": world, "limit": limit})
        )

    def quarantine_release(self, atom_id: str) -> Atom:
        return self._send(_Req("POST", f"/quarantine/{atom_id}/release", lambda d, _h: _atom(d)))

    def quarantine_drop(self, atom_id: str) -> None:
        return self._send(_Req("POST", f"/quarantine/{atom_id}/drop", _none))

    def health(self) -> dict[str, Any]:
        return self._send(_Req("GET", "/health", _raw))

    def metrics_snapshot(self) -> dict[str, Any]:
        return self._send(_Req("GET", "/metrics/snapshot", _raw))


def _link(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


class AsyncClient(Client):
    """:class:`Client` with every method awaited (``await db.remember(...)``).

    ``observe_stream`` is an async iterator: ``async for atom in db.observe_stream(...)``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(url, token=token, timeout=timeout, headers=headers)
        self._http.close()
        self._ahttp = httpx.AsyncClient(
            base_url=self.url, headers=self._headers, timeout=timeout, transport=transport
        )

    def _send(self, req: _Req[T]) -> Any:
        async def go() -> T:
            for attempt in range(req.retries + 1):
                try:
                    resp = await self._ahttp.request(req.method, req.path, **_body(req))
                    break
                except httpx.TransportError as exc:
                    if attempt == req.retries:
                        raise UnavailableError(
                            f"cannot reach DWBase node at {self.url}: {exc}"
                        ) from exc
                    await asyncio.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
            if resp.status_code >= 400:
                _raise_for(resp)
            return req.parse(resp.json(), resp.headers)

        return go()

    async def aclose(self) -> None:
        await self._ahttp.aclose()

    def close(self) -> None:  # pragma: no cover - async users call aclose()
        raise DWBaseError("use 'await client.aclose()' (or 'async with') for AsyncClient")

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def observe_stream(  # type: ignore[override]
        self,
        world: str | None = None,
        *,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        last_event_id: str | None = None,
        max_events: int | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[Atom]:
        params = _drop_none(
            {
                "world": world,
                "kinds": list(kinds) if kinds else None,
                "labels": list(labels) if labels else None,
                "max_events": max_events,
                "timeout_s": timeout_s,
            }
        )
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            async with self._ahttp.stream(
                "GET", "/observe/stream", params=params, headers=headers, timeout=None
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    _raise_for(resp)
                parser = _SSE()
                async for line in resp.aiter_lines():
                    atom = parser.feed(line)
                    if atom is not None:
                        yield atom
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach DWBase node at {self.url}: {exc}") from exc

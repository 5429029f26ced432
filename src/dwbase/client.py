"""``dwbase.Client``: the library's methods over HTTP, with the same types and errors.

>>> import dwbase
>>> db = dwbase.Client("http://127.0.0.1:8080", token="dwb_...")   # doctest: +SKIP
>>> aid = db.remember("demo", "agent-1", "observation", {"text": "disk full"})  # doctest: +SKIP
>>> db.ask("demo", "what is full?").hits[0].atom.id == aid  # doctest: +SKIP
True

Errors arrive as the same classes the engine raises (``CapabilityDeniedError``,
``NotFoundError``, ``RateLimitedError`` with ``retry_after`` ...); a node that cannot be
reached raises ``UnavailableError``. :class:`~dwbase.aclient.AsyncClient` (also importable
from here) offers the same methods as coroutines. Both implement :class:`dwbase.DWBaseAPI`.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from . import wire
from .aclient import AsyncClient
from .errors import UnavailableError
from .model import Answer, Atom, AtomFilter
from .results import AtomId, GcReport
from .stream import SubscriptionStats
from .wire import DEFAULT_URL, RETRY_BACKOFF_S, WRITE_RETRIES

T = TypeVar("T")

__all__ = ["DEFAULT_URL", "AsyncClient", "Client"]


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

    def _send(self, req: wire.Request[T]) -> T:
        for attempt in range(req.retries + 1):
            try:
                resp = self._http.request(req.method, req.path, **wire.send_kwargs(req))
                break
            except httpx.TransportError as exc:
                if attempt == req.retries:
                    raise UnavailableError(
                        f"cannot reach DWBase node at {self.url}: {exc}"
                    ) from exc
                time.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
        if resp.status_code >= 400:
            wire.raise_for(resp)
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
        text: str | None = None,
        importance: float = 0.5,
        timestamp: str = "",
        vector: Sequence[float] | None = None,
        flags: Sequence[str] = (),
        labels: Sequence[str] = (),
        links: Sequence[Any] = (),
    ) -> AtomId:
        """Store one atom; the payload is exactly one of ``payload``, ``payload_json`` or
        ``text`` (short for ``payload={"text": text}``), checked before anything is sent."""
        body = wire.remember_body(
            world,
            worker,
            kind,
            payload,
            payload_json=payload_json,
            text=text,
            importance=importance,
            timestamp=timestamp,
            vector=vector,
            flags=flags,
            labels=labels,
            links=links,
        )
        return self._send(
            wire.Request("POST", "/remember", wire.atom_id, body, retries=WRITE_RETRIES)
        )

    def remember_atom(self, new_atom: Mapping[str, Any]) -> AtomId:
        """Store one NewAtom; an ``id`` is chosen here unless it has one (see remember_batch)."""
        return self._send(
            wire.Request(
                "POST", "/remember", wire.atom_id, wire.with_id(new_atom), retries=WRITE_RETRIES
            )
        )

    def remember_batch(self, atoms: Sequence[Mapping[str, Any]]) -> list[AtomId]:
        """All atoms are stored, or none.

        Each atom without an ``id`` gets one chosen here (a UUIDv7), and a batch whose answer
        is lost to a transport error is sent again, up to ``WRITE_RETRIES`` times: the node
        stores nothing twice and answers the same ids. Held writes come back with
        ``aid.held`` set.
        """
        body = {"atoms": [wire.with_id(a) for a in atoms]}
        return self._send(
            wire.Request("POST", "/remember/batch", wire.atom_ids, body, retries=WRITE_RETRIES)
        )

    # ------------------------------------------------------------------ reads

    def ask(
        self,
        world: str,
        text: str,
        *,
        filter: AtomFilter | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        flags: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 10,
        as_of: str | None = None,
        rank: str = "hybrid",
        weights: Mapping[str, Any] | None = None,
        current_only: bool = False,
        vector: Sequence[float] | None = None,
    ) -> Answer:
        body = wire.drop_none(
            {
                "world": world,
                "text": text,
                "filter": wire.filter_body(
                    filter, kinds=kinds, labels=labels, flags=flags, since=since, until=until
                ),
                "limit": limit,
                "as_of": as_of,
                "rank": rank,
                "weights": dict(weights) if weights is not None else None,
                "current_only": current_only,
                "vector": list(vector) if vector is not None else None,
            }
        )
        return self._send(wire.Request("POST", "/ask", wire.answer, body))

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
        flt = wire.filter_body(
            filter,
            kinds=kinds,
            labels=labels,
            flags=flags,
            since=since,
            until=until,
            limit=limit,
        )
        body = wire.drop_none(
            {
                "world": world,
                "filter": flt,
                "as_of": as_of,
                "order": order,
                "current_only": current_only,
                "after": after,
            }
        )
        return self._send(wire.Request("POST", "/replay", wire.atoms, body))

    def get(self, atom_id: str) -> Atom:
        """The atom; ``NotFoundError`` if absent or not readable with this token."""
        path = "/atoms/" + urllib.parse.quote(atom_id, safe="")
        return self._send(wire.Request("GET", path, wire.one_atom))

    inspect = get

    def list_worlds(self, *, include_archived: bool = False) -> list[str]:
        return self._send(
            wire.Request(
                "GET",
                "/worlds",
                wire.raw,
                params={"include_archived": str(include_archived).lower()},
            )
        )

    # ------------------------------------------------------------------ worlds & policy

    def create_world(
        self, world: str, *, description: str | None = None, labels: Sequence[str] = ()
    ) -> AtomId:
        body = wire.drop_none(
            {"action": "create", "world": world, "description": description, "labels": list(labels)}
        )
        return self._send(wire.Request("POST", "/worlds/manage", wire.atom_id, body))

    def archive_world(self, world: str) -> AtomId:
        return self._send(
            wire.Request(
                "POST", "/worlds/manage", wire.atom_id, {"action": "archive", "world": world}
            )
        )

    def resume_world(self, world: str) -> AtomId:
        return self._send(
            wire.Request(
                "POST", "/worlds/manage", wire.atom_id, {"action": "resume", "world": world}
            )
        )

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
        body = wire.drop_none(
            {
                "world": world,
                "retention_days": retention_days,
                "retention_min_days": retention_min_days,
                "min_importance": min_importance,
                "replication_allow": list(replication_allow) if replication_allow else None,
                "replication_deny": list(replication_deny) if replication_deny else None,
            }
        )
        return self._send(wire.Request("POST", "/worlds/policy", wire.atom_id, body))

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
        body = wire.filter_body(filter) or {}
        if world is not None:
            body["world"] = world
        body.update(
            wire.drop_none({"after": after, "capacity": capacity, "drop_policy": drop_policy})
        )
        return self._send(wire.Request("POST", "/observe/start", wire.handle, body))

    def observe_poll(self, handle: str, max: int = 100) -> list[Atom]:
        return self._send(
            wire.Request("POST", "/observe/poll", wire.atoms, {"handle": handle, "max": max})
        )

    def observe_stop(self, handle: str) -> None:
        return self._send(wire.Request("POST", "/observe/stop", wire.nothing, {"handle": handle}))

    def observe_stats(self, handle: str) -> SubscriptionStats:
        return self._send(wire.Request("GET", f"/observe/{handle}/stats", wire.stats))

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
        params = wire.drop_none(
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
                    wire.raise_for(resp)
                parser = wire.SSEParser()
                for line in resp.iter_lines():
                    atom = parser.feed(line)
                    if atom is not None:
                        yield atom
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach DWBase node at {self.url}: {exc}") from exc

    # ------------------------------------------------------------------ index & operators

    def index_status(self, world: str | None = None) -> list[dict[str, Any]]:
        return self._send(wire.Request("GET", "/index/status", wire.raw, params={"world": world}))

    def index_rebuild(self, world: str | None = None) -> dict[str, Any]:
        return self._send(
            wire.Request("POST", "/index/rebuild", wire.raw, wire.drop_none({"world": world}))
        )

    def quarantine_list(self, world: str | None = None, *, limit: int = 1000) -> list[Atom]:
        return self._send(
            wire.Request("GET", "/quarantine", wire.atoms, params={"world": world, "limit": limit})
        )

    def quarantine_release(self, atom_id: str) -> Atom:
        return self._send(wire.Request("POST", f"/quarantine/{atom_id}/release", wire.one_atom))

    def quarantine_drop(self, atom_id: str) -> None:
        return self._send(wire.Request("POST", f"/quarantine/{atom_id}/drop", wire.nothing))

    def gc(self) -> GcReport:
        """Apply retention, minimum importance and the disk budget now (``POST /gc``).

        An operator action: the token needs the operate capability, and gc's only the worlds
        it operates on (see docs/security.md).
        """
        return self._send(wire.Request("POST", "/gc", wire.gc_report))

    def health(self) -> dict[str, Any]:
        return self._send(wire.Request("GET", "/health", wire.raw))

    def metrics_snapshot(self) -> dict[str, Any]:
        return self._send(wire.Request("GET", "/metrics/snapshot", wire.raw))

    def swarm_status(self) -> dict[str, Any]:
        """The node's swarm: peers, worlds, lag, cursors (``GET /swarm``)."""
        return self._send(wire.Request("GET", "/swarm", wire.raw))

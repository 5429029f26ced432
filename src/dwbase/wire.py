"""The HTTP wire of :class:`dwbase.Client` and :class:`dwbase.AsyncClient`.

Both clients build the same :class:`Request` for a method and read the node's answer with
the same parsers, so they cannot drift apart: a request is a route, a body and a parser; an
error body becomes the engine's exception class (``raise_for``); Server-Sent Events become
atoms (``SSEParser``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from .errors import InternalError, UnavailableError, error_from_dict
from .ids import new_id
from .model import Answer, Atom, AtomFilter, Hit, remember_payload
from .results import AtomId, GcReport
from .stream import SubscriptionStats

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"


# Writes carry ids chosen here, so a write whose answer was lost (a reset connection, a
# timeout) is sent again: the node stores nothing twice and answers the same ids.
WRITE_RETRIES = 2
RETRY_BACKOFF_S = (0.05, 0.25)


@dataclass(frozen=True, slots=True)
class Request(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any, httpx.Headers], T]
    body: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0  # how often to resend after a transport error (idempotent requests only)


def atom(d: Any) -> Atom:
    return Atom.from_dict(d)


def one_atom(d: Any, _h: httpx.Headers) -> Atom:
    return atom(d)


def atoms(d: Any, _h: httpx.Headers | None = None) -> list[Atom]:
    return [atom(a) for a in d]


def answer(d: Any, _h: httpx.Headers) -> Answer:
    return Answer(
        world=d["world"],
        text=d["text"],
        supporting_atoms=[atom(a) for a in d["supporting_atoms"]],
        hits=[
            Hit(
                atom=atom(h["atom"]),
                score=float(h["score"]),
                parts={k: float(v) for k, v in h["parts"].items()},
                sources=tuple(h["sources"]),
            )
            for h in d["hits"]
        ],
        warnings=list(d["warnings"]),
    )


def atom_id(d: Any, _h: httpx.Headers) -> AtomId:
    # A held write answers an object that says so (docs/node.md), a normal one the id string.
    return AtomId.from_wire(d)


def atom_ids(d: Any, _h: httpx.Headers) -> list[AtomId]:
    return [AtomId.from_wire(i) for i in d]


def with_id(new_atom: Mapping[str, Any]) -> dict[str, Any]:
    """``new_atom`` with an id of its own, so that sending it again stores nothing twice."""
    out = dict(new_atom)
    if out.get("id") is None:
        out["id"] = new_id()
    return out


def raw(d: Any, _h: httpx.Headers) -> Any:
    return d


def nothing(_d: Any, _h: httpx.Headers) -> None:
    return None


def handle(d: Any, _h: httpx.Headers) -> str:
    return str(d["handle"])


def gc_report(d: Any, _h: httpx.Headers) -> GcReport:
    return GcReport(
        evicted=int(d["evicted"]),
        by_reason={k: int(v) for k, v in d["by_reason"].items()},
        by_world={k: int(v) for k, v in d["by_world"].items()},
    )


def stats(d: Any, _h: httpx.Headers) -> SubscriptionStats:
    return SubscriptionStats(
        handle=d["handle"],
        queued_count=d["queued_count"],
        dropped_count=d["dropped_count"],
        last_event_ms=d["last_event_ms"],
        warnings=list(d["warnings"]),
        cursor=d.get("cursor"),
    )


def filter_body(flt: AtomFilter | Mapping[str, Any] | None, **extra: Any) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if isinstance(flt, AtomFilter):
        out = {k: v for k, v in flt.to_dict().items() if v not in (None, [])}
    elif flt is not None:
        out = dict(flt)
    for key, value in extra.items():
        if value is not None:
            out[key] = list(value) if isinstance(value, list | tuple) else value
    return out or None


def remember_body(
    world: str,
    worker: str | None,
    kind: str,
    payload: Mapping[str, Any] | None,
    *,
    payload_json: str | None,
    text: str | None,
    importance: float,
    timestamp: str,
    vector: Sequence[float] | None,
    flags: Sequence[str],
    labels: Sequence[str],
    links: Sequence[Any],
) -> dict[str, Any]:
    """The NewAtom a client's ``remember`` sends, with an id of its own. The payload is
    checked here as the engine checks it, so a call without one sends nothing."""
    payload, payload_json = remember_payload(worker, payload, payload_json, text)
    return drop_none(
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
            "links": [link(x) for x in links],
        }
    )


def drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def send_kwargs(req: Request[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"params": drop_none(req.params)}
    if req.body is not None:
        # NaN/Infinity are sent as written so the node, like the engine, rejects them with
        # invalid_input (httpx's own encoder would raise ValueError here instead).
        out["content"] = json.dumps(req.body, separators=(",", ":")).encode()
        out["headers"] = {"content-type": "application/json"}
    return out


def raise_for(resp: httpx.Response) -> None:
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


class SSEParser:
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
            return atom(body)
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


def link(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value

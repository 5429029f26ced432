"""The atom model and input validation.

Everything that enters DWBase passes :func:`validate_new_atom` (local writes) or
:func:`validate_atom` (atoms from peers); nothing invalid is ever stored. Payloads are read
by :mod:`dwbase.payload` (its names are re-exported here).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError, PayloadTooLargeError
from .payload import DEFAULT_MAX_PAYLOAD_BYTES as DEFAULT_MAX_PAYLOAD_BYTES
from .payload import MAX_PAYLOAD_DEPTH as MAX_PAYLOAD_DEPTH
from .payload import finite as finite
from .payload import is_utf8 as _is_utf8
from .payload import parse_payload as parse_payload
from .payload import payload_text as payload_text
from .timeutil import format_instant, parse_instant

KINDS = ("observation", "reflection", "plan", "action", "message")
LINK_KINDS = ("supersedes", "contradicts", "confirms", "references")

MAX_KEY_LEN = 256
MAX_TAGS = 64
MAX_LINKS = 64
MAX_VECTOR_DIMS = 4096
# Longest question ``ask`` takes. A question costs time in proportion to its length, and
# every ask shares the same threads: a bound keeps one caller from holding them all.
MAX_QUESTION_CHARS = 8192
MAX_POLICY_DAYS = 3_650_000  # 10,000 years; larger values overflow SQLite's 64-bit integers

_WORLD_RE = re.compile(r"\A[A-Za-z0-9:/._\-]{1,256}\Z")  # \Z: "$" accepts a final "\n"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# An id chosen by the writer: a UUID in canonical form (dwbase.ids.new_id() makes UUIDv7 ones).
_CLIENT_ID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_POLICY_INT_KEYS = ("retention_days", "retention_min_days")
_POLICY_FLOAT_KEYS = ("min_importance",)
_POLICY_STR_KEYS = ("replication_allow", "replication_deny")
WORLD_STATUSES = ("active", "archived")
QUARANTINE_PREFIX = "quarantine:"


@dataclass(frozen=True, slots=True)
class Link:
    """A typed reference to another atom."""

    target: str
    kind: str = "references"

    def to_dict(self) -> dict[str, str]:
        return {"target": self.target, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Atom:
    """An immutable stored record. ``timestamp`` is event time, ``recorded_at`` record time."""

    id: str
    world: str
    worker: str
    kind: str
    timestamp: str
    importance: float
    payload_json: str
    vector: tuple[float, ...] | None = None
    flags: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    recorded_at: str = ""

    def __repr__(self) -> str:
        return (
            f"<Atom {_short_id(self.id)} {self.world} {self.kind} by {self.worker} {_gist(self)!r}>"
        )

    @property
    def payload(self) -> Any:
        return json.loads(self.payload_json)

    @property
    def ts_us(self) -> int:
        return parse_instant(self.timestamp)

    @property
    def recorded_us(self) -> int:
        return parse_instant(self.recorded_at, field="recorded_at")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "world": self.world,
            "worker": self.worker,
            "kind": self.kind,
            "timestamp": self.timestamp,
            "importance": self.importance,
            "payload_json": self.payload_json,
            "vector": list(self.vector) if self.vector is not None else None,
            "flags": list(self.flags),
            "labels": list(self.labels),
            "links": [link.to_dict() for link in self.links],
            "recorded_at": self.recorded_at,
        }

    def to_wire(self, payload: Callable[[str], Any] | None = None) -> dict[str, Any]:
        """The form the node and ``--json`` output send: :meth:`to_dict` plus ``payload``, the
        parsed payload (NaN and infinities, which JSON lacks, as null; ``payload(text)`` gives
        it another way). Storage (checksums, backups) keeps :meth:`to_dict`; ``payload_json``
        stays the original's wire shape, byte for byte."""
        value = payload(self.payload_json) if payload else finite(json.loads(self.payload_json))
        return {  # to_dict's fields in its order, payload after payload_json
            "id": self.id,
            "world": self.world,
            "worker": self.worker,
            "kind": self.kind,
            "timestamp": self.timestamp,
            "importance": self.importance,
            "payload_json": self.payload_json,
            "payload": value,
            "vector": list(self.vector) if self.vector is not None else None,
            "flags": list(self.flags),
            "labels": list(self.labels),
            "links": [link.to_dict() for link in self.links],
            "recorded_at": self.recorded_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Atom:
        """Build an atom from its wire form (:meth:`to_dict` or :meth:`to_wire`), validating
        every field."""
        return validate_atom(data)


@dataclass(frozen=True, slots=True)
class AtomFilter:
    """Selects atoms; means the same on every path (ask candidates, replay, observe).

    ``labels`` and ``flags`` must all be present; ``since``/``until`` are inclusive event-time
    instants; ``limit`` caps the result.
    """

    world: str | None = None
    kinds: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "world": self.world,
            "kinds": list(self.kinds),
            "labels": list(self.labels),
            "flags": list(self.flags),
            "since": self.since,
            "until": self.until,
            "limit": self.limit,
        }


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """A validated filter in internal units (microseconds)."""

    kinds: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    since_us: int | None = None
    until_us: int | None = None
    as_of_us: int | None = None

    @property
    def is_open(self) -> bool:
        return not (
            self.kinds
            or self.labels
            or self.flags
            or self.since_us is not None
            or self.until_us is not None
            or self.as_of_us is not None
        )

    def matches(self, rec: StoredAtom) -> bool:
        if self.kinds and rec.atom.kind not in self.kinds:
            return False
        if self.since_us is not None and rec.ts_us < self.since_us:
            return False
        if self.until_us is not None and rec.ts_us > self.until_us:
            return False
        if self.as_of_us is not None and rec.recorded_us > self.as_of_us:
            return False
        if self.labels and not self.labels.issubset(rec.atom.labels):
            return False
        return not (self.flags and not self.flags.issubset(rec.atom.flags))


@dataclass(frozen=True, slots=True)
class StoredAtom:
    """An atom with the storage-side facts the engine needs (no parsing on hot paths)."""

    atom: Atom
    seq: int
    ts_us: int
    recorded_us: int
    text: str
    quarantine: str | None = None  # reason, when the atom sits in quarantine:<world>

    def visible_atom(self) -> Atom:
        """The atom as readers see it: quarantined atoms appear in ``quarantine:<world>``."""
        if self.quarantine is None:
            return self.atom
        a = self.atom
        flags = a.flags if "suspect" in a.flags else (*a.flags, "suspect")
        return Atom(
            id=a.id,
            world=QUARANTINE_PREFIX + a.world,
            worker=a.worker,
            kind=a.kind,
            timestamp=a.timestamp,
            importance=a.importance,
            payload_json=a.payload_json,
            vector=a.vector,
            flags=flags,
            labels=a.labels,
            links=a.links,
            recorded_at=a.recorded_at,
        )


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked answer atom with its score and the parts of the score."""

    atom: Atom
    score: float
    parts: dict[str, float]
    sources: tuple[str, ...]

    def __repr__(self) -> str:
        return f"<Hit {self.score:.3f} {_short_id(self.atom.id)} {_gist(self.atom)!r}>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "atom": self.atom.to_dict(),
            "score": self.score,
            "parts": dict(self.parts),
            "sources": list(self.sources),
        }

    def to_wire(self, payload: Callable[[str], Any] | None = None) -> dict[str, Any]:
        """:meth:`to_dict` with the atom in its wire form (:meth:`Atom.to_wire`)."""
        return self._with_atom(self.atom.to_wire(payload))

    def _with_atom(self, atom: dict[str, Any]) -> dict[str, Any]:
        return {
            "atom": atom,
            "score": self.score,
            "parts": dict(self.parts),
            "sources": list(self.sources),
        }


@dataclass(frozen=True, slots=True)
class Answer:
    world: str
    text: str
    supporting_atoms: list[Atom]
    hits: list[Hit]
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        n = len(self.hits)
        out = f"<Answer {self.world}: {n} hit{'' if n == 1 else 's'}"
        if self.hits:
            out += f", top {_gist(self.hits[0].atom)!r}"
        if self.warnings:
            more = f" (+{len(self.warnings) - 1} more)" if len(self.warnings) > 1 else ""
            out += f"; warning: {_clip(self.warnings[0], 60)}{more}"
        return out + ">"

    def to_dict(self) -> dict[str, Any]:
        return {
            "world": self.world,
            "text": self.text,
            "supporting_atoms": [a.to_dict() for a in self.supporting_atoms],
            "hits": [h.to_dict() for h in self.hits],
            "warnings": list(self.warnings),
        }

    def to_wire(self, payload: Callable[[str], Any] | None = None) -> dict[str, Any]:
        """:meth:`to_dict` with every atom in its wire form (:meth:`Atom.to_wire`).

        An atom that is both a supporting atom and a hit's atom is converted once (the answer
        holds the same dict twice; it is meant to be serialised, not edited)."""
        done: dict[int, dict[str, Any]] = {}

        def wire(atom: Atom) -> dict[str, Any]:
            d = done.get(id(atom))
            if d is None:
                d = done[id(atom)] = atom.to_wire(payload)
            return d

        return {
            "world": self.world,
            "text": self.text,
            "supporting_atoms": [wire(a) for a in self.supporting_atoms],
            "hits": [h._with_atom(wire(h.atom)) for h in self.hits],
            "warnings": list(self.warnings),
        }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _short_id(atom_id: str) -> str:
    """``0190f3c2…8c7d``: the time-ordered head and the tail that tells neighbours apart."""
    return atom_id if len(atom_id) <= 13 else f"{atom_id[:8]}\u2026{atom_id[-4:]}"


def _gist(atom: Atom) -> str:
    """What a person recognises an atom by: its payload's ``text``, else its JSON, clipped."""
    try:
        payload = json.loads(atom.payload_json)
    except ValueError:
        payload = None
    text = payload.get("text") if isinstance(payload, dict) else None
    return _clip(text if isinstance(text, str) else atom.payload_json, 40)


# --------------------------------------------------------------------------------- validation


def remember_payload(worker: Any, payload: Any, payload_json: Any, text: Any) -> tuple[Any, Any]:
    """The payload of a library ``remember``: exactly one of ``payload=``, ``payload_json=``
    or ``text=`` (short for ``payload={"text": text}``, as the CLI's ``--text``).

    Returns ``(payload, payload_json)`` for :func:`parse_payload`. A call with none is refused
    rather than storing an empty payload: ``remember("demo", "some text")`` names a worker,
    not a text, and the message says so.
    """
    given = [
        name
        for name, value in (("payload", payload), ("payload_json", payload_json), ("text", text))
        if value is not None and value != ""
    ]
    if not given:
        hint = ""
        if isinstance(worker, str) and (" " in worker.strip() or len(worker) > 64):
            hint = f"; the second argument is the worker: did you mean text={_clip(worker, 60)!r}?"
        raise InvalidInputError(
            "remember needs a payload: give one of payload= (an object), payload_json= "
            f"(a JSON string) or text= (a text){hint}",
            field="payload",
        )
    if len(given) > 1:
        raise InvalidInputError(
            f"give only one of payload=, payload_json= or text=, not {' and '.join(given)}",
            field="payload",
        )
    if text is not None:
        if not isinstance(text, str):
            raise InvalidInputError("text must be a string", field="text")
        return {"text": text}, None
    return payload, payload_json


def validate_world(world: Any, *, field: str = "world") -> str:
    if not isinstance(world, str) or not world:
        raise InvalidInputError(f"{field} must be a non-empty string", field=field)
    if not _WORLD_RE.match(world):
        raise InvalidInputError(
            f"{field} {world[:80]!r} is not a valid world key: 1-256 characters from letters, "
            "digits and : / . - _",
            field=field,
        )
    return world


def _validate_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_KEY_LEN:
        raise InvalidInputError(f"{field} is longer than {MAX_KEY_LEN} characters", field=field)
    if _CONTROL_RE.search(value):
        raise InvalidInputError(f"{field} must not contain control characters", field=field)
    if not _is_utf8(value):
        raise InvalidInputError(
            f"{field} must be valid Unicode text (it holds an unpaired surrogate)", field=field
        )
    return value


def validate_client_id(value: Any) -> str:
    """An atom id chosen by the writer (``NewAtom.id``): a UUID in canonical lowercase form.

    Peers keep the ids their atoms already have (:func:`validate_atom`); a new atom's id made
    elsewhere must look like the ones DWBase makes, so it is safe in URLs, logs and cursors.
    """
    if not isinstance(value, str) or not _CLIENT_ID_RE.match(value):
        shown = repr(value)[:60]
        raise InvalidInputError(
            f"id {shown} is not a UUID in canonical form (lowercase 8-4-4-4-12 hex digits, "
            "e.g. from dwbase.ids.new_id()); leave id out to let DWBase choose one",
            field="id",
        )
    return value


def validate_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise InvalidInputError(
            f"kind {kind!r} is not one of {', '.join(KINDS)}", field="kind", allowed=list(KINDS)
        )
    return str(kind)


def validate_importance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError("importance must be a number in [0, 1]", field="importance")
    try:
        f = float(value)
    except OverflowError:
        f = math.inf
    if math.isnan(f) or not 0.0 <= f <= 1.0:
        raise InvalidInputError(
            f"importance {str(value)[:32]} is outside [0, 1]", field="importance"
        )
    # -0.0 becomes 0.0: SQLite's REAL drops the sign, which would break the record checksum.
    return f + 0.0


def validate_tags(values: Any, field: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{field} must be a list of strings", field=field)
    out: list[str] = []
    for v in values:
        out.append(_validate_name(v, field))
    if len(out) > MAX_TAGS:
        raise InvalidInputError(f"at most {MAX_TAGS} {field} per atom", field=field)
    # Order kept, duplicates dropped: labels are a set with a stable presentation order.
    return tuple(dict.fromkeys(out))


def validate_policy_labels(labels: Sequence[str]) -> None:
    for label in labels:
        if not label.startswith("policy:"):
            continue
        body = label[len("policy:") :]
        key, sep, raw = body.partition("=")
        if not sep:
            raise InvalidInputError(
                f"policy label {label!r} must look like policy:key=value", field="labels"
            )
        if key in _POLICY_INT_KEYS:
            # ASCII only: str.isdigit() also accepts "²" and "١", which int() refuses.
            if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_POLICY_DAYS:
                raise InvalidInputError(
                    f"{label!r}: {key} must be a whole number of days up to {MAX_POLICY_DAYS}",
                    field="labels",
                )
        elif key in _POLICY_FLOAT_KEYS:
            try:
                f = float(raw)
            except ValueError:
                f = math.nan
            if math.isnan(f) or not 0.0 <= f <= 1.0:
                raise InvalidInputError(
                    f"{label!r}: {key} must be a number in [0, 1]", field="labels"
                )
        elif key in _POLICY_STR_KEYS:
            if not raw:
                raise InvalidInputError(f"{label!r}: {key} needs a pattern", field="labels")
        else:
            known = ", ".join(_POLICY_INT_KEYS + _POLICY_FLOAT_KEYS + _POLICY_STR_KEYS)
            raise InvalidInputError(f"unknown policy key {key!r} (known: {known})", field="labels")
    for label in labels:
        if (
            label.startswith("world_status:")
            and label[len("world_status:") :] not in WORLD_STATUSES
        ):
            raise InvalidInputError(
                f"{label!r}: world status must be one of {', '.join(WORLD_STATUSES)}",
                field="labels",
            )


def validate_links(values: Any) -> tuple[Link, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInputError("links must be a list", field="links")
    out: list[Link] = []
    for v in values:
        target: Any
        kind: Any
        if isinstance(v, Link):
            target, kind = v.target, v.kind
        elif isinstance(v, str):
            target, kind = v, "references"
        elif isinstance(v, Mapping):
            target, kind = v.get("target"), v.get("kind", "references")
        else:
            raise InvalidInputError(
                'a link is {"target": id, "kind": kind} or an id string', field="links"
            )
        _validate_name(target, "links.target")
        if kind not in LINK_KINDS:
            raise InvalidInputError(
                f"link kind {kind!r} is not one of {', '.join(LINK_KINDS)}", field="links.kind"
            )
        out.append(Link(str(target), str(kind)))
    if len(out) > MAX_LINKS:
        raise InvalidInputError(f"at most {MAX_LINKS} links per atom", field="links")
    return tuple(dict.fromkeys(out))


def validate_question(text: Any) -> str:
    """The text of an ask: a string of at most :data:`MAX_QUESTION_CHARS` characters."""
    if not isinstance(text, str):
        raise InvalidInputError("question text must be a string", field="text")
    if len(text) > MAX_QUESTION_CHARS:
        raise PayloadTooLargeError(
            f"question text is {len(text)} characters; the limit is {MAX_QUESTION_CHARS} "
            "(ask about the gist, or split the question)",
            field="text",
            limit=MAX_QUESTION_CHARS,
            size=len(text),
        )
    return text


def validate_vector(values: Any) -> tuple[float, ...] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInputError("vector must be a list of numbers", field="vector")
    fast = _fast_vector(values)
    if fast is not None:
        return fast
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InvalidInputError("vector must be a list of numbers", field="vector")
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            raise InvalidInputError(
                "vector values must be finite (no NaN or Infinity)", field="vector"
            )
        out.append(f)
    if not out:
        return None
    if len(out) > MAX_VECTOR_DIMS:
        raise InvalidInputError(
            f"vector has {len(out)} dims; at most {MAX_VECTOR_DIMS}", field="vector"
        )
    return tuple(out)


def _fast_vector(values: Any) -> tuple[float, ...] | None:
    """The common case in C loops: a list/tuple of plain floats/ints, all finite.

    Returns ``None`` whenever the slow path must decide (other types, bools, non-finite
    values, overflow) so that it can name the problem.
    """
    if not isinstance(values, list | tuple) or not values or len(values) > MAX_VECTOR_DIMS:
        return None
    if not set(map(type, values)) <= {float, int}:
        return None
    try:
        out = tuple(map(float, values))
        total = math.fsum(map(abs, out))
    except (OverflowError, ValueError):
        return None
    return out if math.isfinite(total) else None


# Instants a stored atom may carry: years 0001-9999 in UTC (what RFC 3339 can write).
MIN_INSTANT_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_INSTANT_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def parse_stored_instant(value: str, *, field: str = "timestamp") -> int:
    """Parse an instant that will be stored, rejecting ones outside years 0001-9999 UTC."""
    us = parse_instant(value, field=field)
    if not MIN_INSTANT_US <= us <= MAX_INSTANT_US:
        raise InvalidInputError(
            f"{field} {value!r} is outside years 0001-9999 once normalised to UTC", field=field
        )
    return us


def validate_timestamp(value: Any, now_us: int) -> int:
    if value is None or value == "":
        return now_us
    if not isinstance(value, str):
        raise InvalidInputError("timestamp must be an RFC 3339 string or empty", field="timestamp")
    return parse_stored_instant(value)


def validate_atom(
    data: Mapping[str, Any],
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    now_us: int | None = None,
) -> Atom:
    """Validate a complete atom (with id and record time), e.g. from a peer or a wire form.

    With ``now_us`` (an atom published but not stored, as ``observe`` does), an empty or
    missing ``timestamp`` means now, as it does for ``remember``; without it (a stored atom
    from a peer) the timestamp is required.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError("an atom must be a JSON object")
    atom_id = _validate_name(data.get("id"), "id")
    world = validate_world(data.get("world"))
    worker = _validate_name(data.get("worker"), "worker")
    kind = validate_kind(data.get("kind"))
    ts = data.get("timestamp")
    if now_us is not None:
        ts_us = validate_timestamp(ts, now_us)
    elif not isinstance(ts, str) or not ts:
        raise InvalidInputError("timestamp is required on a stored atom", field="timestamp")
    else:
        ts_us = parse_stored_instant(ts)
    importance = validate_importance(data.get("importance"))
    payload_json, payload = data.get("payload_json"), data.get("payload")
    wire_form = payload is not None and payload_json not in (None, "")
    payload_json, parsed = parse_payload(
        payload_json, None if wire_form else payload, max_bytes=max_payload_bytes
    )
    if wire_form and finite(payload) != finite(parsed):
        # The wire form (Atom.to_wire) carries both; payload_json is the record.
        raise InvalidInputError(
            "payload and payload_json differ; give one, or both as an atom was sent",
            field="payload",
        )
    recorded = data.get("recorded_at") or ""
    rec_us = parse_stored_instant(recorded, field="recorded_at") if recorded else None
    labels = validate_tags(data.get("labels"), "labels")
    validate_policy_labels(labels)
    return Atom(
        id=atom_id,
        world=world,
        worker=worker,
        kind=kind,
        timestamp=format_instant(ts_us),
        importance=importance,
        payload_json=payload_json,
        vector=validate_vector(data.get("vector")),
        flags=validate_tags(data.get("flags"), "flags"),
        labels=labels,
        links=validate_links(data.get("links")),
        recorded_at=format_instant(rec_us) if rec_us is not None else "",
    )

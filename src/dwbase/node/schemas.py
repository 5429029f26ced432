"""The HTTP shapes, as pydantic models: they validate request JSON (types only; the engine
checks meaning) and generate ``/openapi.json``, so the document and the checks cannot drift.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import model
from ..model import MAX_QUESTION_CHARS

WORLD_PATTERN = r"^[A-Za-z0-9:/._\-]{1,256}$"

World = Annotated[str, Field(pattern=WORLD_PATTERN, min_length=1, max_length=256)]
Kind = Literal["observation", "reflection", "plan", "action", "message"]
LinkKind = Literal["supersedes", "contradicts", "confirms", "references"]
Tag = Annotated[str, Field(min_length=1, max_length=256)]
Importance = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def valid_fields(model: type[BaseModel], where: Sequence[str]) -> list[str] | None:
    """The fields of the object at ``where`` (a validation error's location, less its last
    part) in a body of ``model``, for "unknown field" answers; ``None`` if it is not clear."""
    found: list[type[BaseModel]] = [model]
    for part in where:
        if part.isdigit():  # an item of a list: the same candidates
            continue
        named = [m for m in found if m.__name__ == part]  # pydantic names a union's member
        if named:
            found = named
            continue
        fields = [m.model_fields[part] for m in found if part in m.model_fields]
        if len(fields) != 1:
            return None
        found = _models(fields[0].annotation)
    return list(found[0].model_fields) if len(found) == 1 else None


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds (``list[A | str] | None`` holds ``A``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


class LinkRef(_In):
    target: Tag
    kind: LinkKind = "references"


ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class NewAtom(_In):
    """An atom to store. ``worker`` is taken from the token on an authenticated node."""

    # The engine checks the form (its error names it); the pattern documents it.
    id: str | None = Field(
        None,
        description="an id chosen by the writer (a UUID, e.g. UUIDv7): writing it again in "
        "the same world stores nothing and answers the same id; an id taken in another world "
        "is 409",
        json_schema_extra={"pattern": ID_PATTERN},
    )
    world: World
    worker: Tag | None = None
    kind: Kind = "observation"
    timestamp: str = Field("", description="RFC 3339 event time; empty means now")
    importance: Importance = 0.5
    payload_json: str | None = Field(None, description="a string holding JSON")
    payload: dict[str, Any] | None = Field(None, description="alternative to payload_json")
    vector: list[Annotated[float, Field(allow_inf_nan=False)]] | None = None
    flags: list[Tag] | None = None
    labels: list[Tag] | None = None
    links: list[LinkRef | Tag] | None = None


class HeldWrite(BaseModel):
    """The answer for a write held in quarantine instead of being stored in its world."""

    id: str
    quarantined: Literal[True]
    world: str = Field(description="quarantine:<world>, where readers find the atom")
    reason: str = Field(description="impossible_number, low_trust or burst")


class RememberBatch(_In):
    atoms: list[NewAtom] = Field(max_length=10_000)


class AtomFilter(_In):
    """Selects atoms. ``labels``/``flags`` must all be present; ``since``/``until`` inclusive."""

    world: World | None = None
    kinds: list[Kind] | None = None
    labels: list[Tag] | None = None
    flags: list[Tag] | None = None
    since: str | None = None
    until: str | None = None
    limit: Annotated[int, Field(ge=1)] | None = None

    def to_filter(self) -> model.AtomFilter:
        """The filter the engine takes (the one filter type from edge to storage)."""
        return model.AtomFilter(
            world=self.world,
            kinds=tuple(self.kinds or ()),
            labels=tuple(self.labels or ()),
            flags=tuple(self.flags or ()),
            since=self.since,
            until=self.until,
            limit=self.limit,
        )


class AskRequest(_In):
    world: World
    # The limit is the engine's (413 payload_too_large above it, on every surface); the schema
    # states it for clients without enforcing it, so the node answers as the library does.
    text: Annotated[
        str,
        Field(
            description=f"the question, at most {MAX_QUESTION_CHARS} characters (413 above)",
            json_schema_extra={"maxLength": MAX_QUESTION_CHARS},
        ),
    ]
    filter: AtomFilter | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] | None = None
    as_of: str | None = None
    rank: Literal["hybrid", "recency", "importance"] = "hybrid"
    weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None
    current_only: bool = False
    vector: list[Annotated[float, Field(allow_inf_nan=False)]] | None = None


class ReplayRequest(_In):
    world: World
    filter: AtomFilter | None = None
    as_of: str | None = None
    order: Literal["append", "event"] = "append"
    current_only: bool = False
    after: Tag | None = Field(None, description="start after this atom id")


class ManageWorldRequest(_In):
    action: Literal["create", "archive", "resume"]
    world: World
    description: str | None = None
    labels: list[Tag] | None = None


class PolicyRequest(_In):
    world: World
    retention_days: Annotated[int, Field(ge=0)] | None = None
    retention_min_days: Annotated[int, Field(ge=0)] | None = None
    min_importance: Importance | None = None
    replication_allow: list[Tag] | None = None
    replication_deny: list[Tag] | None = None


class ObserveStartRequest(AtomFilter):
    """An AtomFilter plus subscription options."""

    after: Tag | None = Field(None, description="first deliver stored atoms after this id")
    capacity: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    drop_policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"


class ObservePollRequest(_In):
    handle: Tag
    max: Annotated[int, Field(ge=1, le=10_000)] = 100


class HandleRequest(_In):
    handle: Tag


class IndexRebuildRequest(_In):
    world: World | None = None


# ------------------------------------------------------------------------------ responses


class Link(BaseModel):
    target: str
    kind: LinkKind


class Atom(BaseModel):
    id: str
    world: str
    worker: str
    kind: Kind
    timestamp: str
    importance: float
    payload_json: str = Field(description="the payload as stored, a string holding JSON")
    payload: Any = Field(
        description="payload_json parsed: the object the atom was written with (as payload or "
        "as payload_json)"
    )
    vector: list[float] | None
    flags: list[str]
    labels: list[str]
    links: list[Link]
    recorded_at: str


class Hit(BaseModel):
    atom: Atom
    score: float
    parts: dict[str, float]
    sources: list[str]


class Answer(BaseModel):
    world: str
    text: str
    supporting_atoms: list[Atom]
    hits: list[Hit]
    warnings: list[str]


class Handle(BaseModel):
    handle: str


class Stopped(BaseModel):
    handle: str
    stopped: bool


class ObserveStats(BaseModel):
    handle: str
    queued_count: int
    dropped_count: int
    last_event_ms: int | None
    warnings: list[str]
    cursor: str | None


class BackgroundTask(BaseModel):
    """Failures of one background task (gc, checkpoint, reembed, index, observe)."""

    failures: int
    failing: bool
    last_error: str | None
    last_failure: str | None


class DiskUsage(BaseModel):
    """The original DWBase node's disk figures: the filesystem holding the store."""

    used_bytes: int
    total_bytes: int
    percent_used: float


class Health(BaseModel):
    """Operator health; ``/readyz`` answers 503 while ``storage_ok`` is false."""

    status: Literal["ready", "degraded"]
    message: str
    storage_ok: bool = Field(description="the store can be read and written now")
    index_ok: bool = Field(description="no vector index is rebuilding or failed its last build")
    disk_used_bytes: int | None
    disk_free_bytes: int | None
    disk_total_bytes: int | None
    disk_used_percent: float | None
    disk_usage: DiskUsage | None = Field(
        description="the disk_* figures in the original DWBase node's shape (null: unknown)"
    )
    disk_budget_bytes: int | None = Field(
        description="the disk budget (storage.max_disk_mb) in bytes; null: no budget"
    )
    disk_budget_used_percent: float | None = Field(
        description="store_bytes as a percentage of the disk budget; counts toward disk_pressure"
    )
    disk_pressure: Literal["unknown", "ok", "warn", "degraded"]
    disk_min_free_bytes: int = Field(description="below this much free disk storage_ok is false")
    store_bytes: int
    wal_bytes: int | None = Field(description="size of the SQLite WAL (null for other stores)")
    last_write_error: str | None = Field(
        description="the last write that failed because the store could not take it"
    )
    storage_write_failures: int
    quarantine_count: int
    index_rebuild_lag_ms: float = Field(
        description="age of the oldest vector a running index rebuild has not reached (0: none)"
    )
    index_freshness_seconds: float = Field(
        description="age of the oldest stored vector not yet in its index (0: caught up)"
    )
    background_failures: dict[str, BackgroundTask]
    sync_lag_ms: float | None = Field(
        default=None, description="replication lag; absent while the node has no swarm"
    )
    replication: dict[str, Any] | None = Field(
        default=None,
        description="the swarm's state: status, connected, outbox, pending, sent, received, "
        "dropped (by reason); absent while the node has no swarm (docs/swarm.md)",
    )
    ask_workers: int = 0
    ask_workers_ready: int = 0


class Alive(BaseModel):
    status: Literal["ok"]


class IndexStatus(BaseModel):
    """Index metadata of one world."""

    model_config = ConfigDict(extra="allow")

    world: str
    ready: bool
    rebuilding: bool


class IndexRebuilt(BaseModel):
    model_config = ConfigDict(extra="allow")

    worlds: list[str]
    vectors: int


class QuarantineDropped(BaseModel):
    id: str
    dropped: bool


class GcReport(BaseModel):
    evicted: int = Field(description="Atoms removed.")
    by_reason: dict[str, int] = Field(description="retention, min_importance or disk_budget.")
    by_world: dict[str, int]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class Error(BaseModel):
    """Every error: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody

"""The node's routes: each authenticates, calls one engine method, and shapes JSON."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from ..engine import Engine
from ..errors import DWBaseError, InvalidHandleError, InvalidInputError
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..model import Atom, AtomFilter, validate_question
from ..results import AtomId
from . import schemas as S
from .state import NodeState, atoms_response, dumps, json_response, run
from .swarm import swarm_health
from .wireform import payload_fragment


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "invalid input",
        401: "missing, unknown or revoked token",
        403: "the token's capabilities do not allow this",
        404: "not found (or not readable by this caller)",
        409: "conflict (e.g. the world is archived)",
        413: "payload or request body too large",
        429: "a rate or resource limit is reached; see Retry-After and details.limit",
        500: "internal fault",
        503: "storage unusable",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for c in (*codes, 400, 500, 503):
        out[c] = {"model": S.Error, "description": text[c]}
        if c == 429:
            out[c]["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}
            }
    return out


def _ok(model: Any, description: str = "OK") -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": description}}


READ = (401, 403)
WRITE = (401, 403, 413)


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


class MetricsText(Response):
    media_type = "text/plain"


def _sse(atom: Atom) -> bytes:
    data = dumps(atom.to_wire(payload_fragment))
    return b"id: %s\nevent: atom\ndata: %s\n\n" % (atom.id.encode(), data)


def _held_header(aid: AtomId) -> dict[str, str]:
    # One id, so the header stays small; the body says the same (see docs/node.md).
    return {"X-DWBase-Quarantined": f"{aid}={aid.quarantined}"} if aid.held else {}


def _held_count_header(ids: list[AtomId]) -> dict[str, str]:
    # A count, never the ids: a batch of 10,000 held atoms once made a 420 KB header.
    held = sum(1 for i in ids if i.held)
    return {"X-DWBase-Quarantined-Count": str(held)} if held else {}


def add_routes(app: FastAPI, st: NodeState) -> None:
    """Every route of docs/node.md plus the operator routes."""
    engine = st.engine
    metrics = st.metrics

    # ------------------------------------------------------------------ writes

    @app.post(
        "/remember",
        summary="Store one atom; returns its id (an object when the write is held)",
        responses={
            **_ok(
                str | S.HeldWrite,
                "the atom's id; for a write held in quarantine, an object that says so",
            ),
            **_errors(*WRITE, 409, 429),
        },
        tags=["atoms"],
    )
    async def remember(request: Request, atom: S.NewAtom) -> Response:
        p = st.principal(request)
        st.limiter.check(p.key, "remember", rate=p.remember_rate)
        data = atom.model_dump(exclude_unset=True)
        t0 = time.perf_counter()
        aid = await st.writes.remember(data, p.caller)
        metrics.remember_seconds.observe(time.perf_counter() - t0)
        return json_response(aid.to_wire(), headers=_held_header(aid))

    @app.post(
        "/remember/batch",
        summary="Store several atoms in one transaction (all or nothing)",
        responses={
            **_ok(
                list[str | S.HeldWrite],
                "the ids, in order; an object for each write held in quarantine",
            ),
            **_errors(*WRITE, 409, 429),
        },
        tags=["atoms"],
    )
    async def remember_batch(request: Request, batch: S.RememberBatch) -> Response:
        p = st.principal(request)
        st.limiter.check(p.key, "remember", rate=p.remember_rate, cost=len(batch.atoms))
        data = [a.model_dump(exclude_unset=True) for a in batch.atoms]
        t0 = time.perf_counter()
        ids = await run(engine.remember_batch, data, caller=p.caller)
        metrics.remember_seconds.observe(time.perf_counter() - t0)
        return json_response([i.to_wire() for i in ids], headers=_held_count_header(ids))

    # ------------------------------------------------------------------ reads

    @app.post(
        "/ask",
        summary="Ranked atoms of a world that matter to a question",
        responses={**_ok(S.Answer), **_errors(*READ, 413, 429)},
        tags=["atoms"],
    )
    async def ask(request: Request, q: S.AskRequest) -> Response:
        p = st.principal(request)
        validate_question(q.text)  # before the ask lane: a huge question never queues there
        st.limiter.check(p.key, "ask", rate=p.ask_rate)
        t0 = time.perf_counter()
        body = await st.askjson_response(
            {
                "world": q.world,
                "text": q.text,
                "filter": q.filter.to_filter() if q.filter else None,
                "limit": q.limit or 10,
                "as_of": q.as_of,
                "rank": q.rank,
                "weights": q.weights,
                "current_only": q.current_only,
                "vector": q.vector,
            },
            p.caller,
            p.key,
        )
        metrics.ask_seconds.observe(time.perf_counter() - t0)
        return Response(body, media_type="application/json")

    @app.post(
        "/replay",
        summary="Atoms of a world in order",
        responses={**_ok(list[S.Atom]), **_errors(*READ, 404, 413)},
        tags=["atoms"],
    )
    async def replay(request: Request, r: S.ReplayRequest) -> Response:
        p = st.principal(request)
        async with st.turn(p.key):  # one caller's replays wait for its own, not others'
            atoms = await run(  # not the read lane: a long replay must not hold up asks
                engine.replay,
                r.world,
                filter=r.filter.to_filter() if r.filter else None,
                as_of=r.as_of,
                order=r.order,
                current_only=r.current_only,
                after=r.after,
                caller=p.caller,
            )
            return atoms_response(atoms)

    @app.get(
        "/atoms/{atom_id}",
        summary="One atom; 404 if absent or not readable by the caller",
        responses={**_ok(S.Atom), **_errors(401, 404)},
        tags=["atoms"],
    )
    async def inspect(request: Request, atom_id: str) -> Response:
        p = st.principal(request)
        atom = await st.reads.call(engine.get, atom_id, caller=p.caller, key=p.key)
        return json_response(atom.to_wire(payload_fragment))

    # ------------------------------------------------------------------ worlds

    @app.get(
        "/worlds",
        summary="Worlds the caller may read",
        responses={**_ok(list[str]), **_errors(401)},
        tags=["worlds"],
    )
    async def list_worlds(request: Request, include_archived: bool = False) -> Response:
        p = st.principal(request)
        return json_response(
            await run(engine.list_worlds, include_archived=include_archived, caller=p.caller)
        )

    @app.post(
        "/worlds/manage",
        summary="Create, archive or resume a world; returns the lifecycle atom's id",
        responses={**_ok(str), **_errors(*WRITE, 404, 409)},
        tags=["worlds"],
    )
    async def manage_world(request: Request, m: S.ManageWorldRequest) -> Response:
        p = st.principal(request)
        if m.action == "create":
            aid = await run(
                engine.create_world,
                m.world,
                description=m.description,
                labels=m.labels or (),
                caller=p.caller,
            )
        else:
            if m.description is not None or m.labels:
                raise InvalidInputError(
                    f"{m.action} takes only world; description and labels are for create",
                    field="action",
                )
            fn = engine.archive_world if m.action == "archive" else engine.resume_world
            aid = await run(fn, m.world, caller=p.caller)
        return json_response(str(aid))

    @app.post(
        "/worlds/policy",
        summary="Write a policy atom into a world; returns its id",
        responses={**_ok(str), **_errors(*WRITE, 409)},
        tags=["worlds"],
    )
    async def world_policy(request: Request, pol: S.PolicyRequest) -> Response:
        p = st.principal(request)
        aid = await run(
            engine.set_policy,
            pol.world,
            retention_days=pol.retention_days,
            retention_min_days=pol.retention_min_days,
            min_importance=pol.min_importance,
            replication_allow=pol.replication_allow,
            replication_deny=pol.replication_deny,
            caller=p.caller,
        )
        return json_response(str(aid))

    # ------------------------------------------------------------------ observe

    @app.post(
        "/observe/start",
        summary="Subscribe to new atoms matching a filter",
        responses={**_ok(S.Handle), **_errors(*READ, 404, 413, 429)},
        tags=["observe"],
    )
    async def observe_start(request: Request, f: S.ObserveStartRequest) -> Response:
        p = st.principal(request)
        ticket = st.observe_limits.reserve(p.key, f.capacity)
        try:
            handle = await run(
                engine.observe_start,
                f.world,
                filter=f.to_filter(),
                after=f.after,
                capacity=f.capacity,
                drop_policy=f.drop_policy,
                caller=p.caller,
            )
        except BaseException:
            st.observe_limits.release(ticket)
            raise
        st.observe_limits.bind(ticket, handle)
        return json_response({"handle": handle})

    @app.post(
        "/observe/poll",
        summary="Take up to max queued atoms",
        responses={**_ok(list[S.Atom]), **_errors(401, 404, 413)},
        tags=["observe"],
    )
    async def observe_poll(request: Request, b: S.ObservePollRequest) -> Response:
        p = st.principal(request)
        st.own_handle(p, b.handle)
        return atoms_response(engine.observe_poll(b.handle, b.max))

    @app.post(
        "/observe/stop",
        summary="End a subscription",
        responses={**_ok(S.Stopped), **_errors(401, 404, 413)},
        tags=["observe"],
    )
    async def observe_stop(request: Request, b: S.HandleRequest) -> Response:
        p = st.principal(request)
        st.own_handle(p, b.handle)
        try:
            engine.observe_stop(b.handle)
        finally:
            st.handles.pop(b.handle, None)
        return json_response({"handle": b.handle, "stopped": True})

    @app.get(
        "/observe/{handle}/stats",
        summary="Queue depth, drops and warnings of a subscription",
        responses={**_ok(S.ObserveStats), **_errors(401, 404)},
        tags=["observe"],
    )
    async def observe_stats(request: Request, handle: str) -> Response:
        p = st.principal(request)
        st.own_handle(p, handle)
        return json_response(engine.observe_stats(handle).to_dict())

    @app.get(
        "/observe/stream",
        summary="Server-Sent Events of new atoms; resumes after Last-Event-ID",
        response_class=EventStream,
        responses={
            200: {
                "description": "event stream: `id: <atom id>`, `event: atom`, `data: <Atom>`",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **_errors(*READ, 404, 429),
        },
        tags=["observe"],
    )
    async def observe_stream(
        request: Request,
        world: Annotated[str | None, Query(pattern=S.WORLD_PATTERN)] = None,
        kinds: Annotated[list[S.Kind] | None, Query()] = None,
        labels: Annotated[list[str] | None, Query()] = None,
        flags: Annotated[list[str] | None, Query()] = None,
        since: str | None = None,
        until: str | None = None,
        after: Annotated[str | None, Query(description="resume after this atom id")] = None,
        capacity: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
        max_events: Annotated[int | None, Query(ge=1, description="end after N events")] = None,
        timeout_s: Annotated[
            float | None, Query(gt=0, le=86_400, description="end after N idle seconds")
        ] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> Response:
        p = st.principal(request)
        flt = AtomFilter(
            kinds=tuple(kinds or ()),
            labels=tuple(labels or ()),
            flags=tuple(flags or ()),
            since=since or None,
            until=until or None,
        )
        ticket = st.observe_limits.reserve(p.key, capacity)
        ready = asyncio.Event()  # set by the hub (from any thread) when atoms arrive
        waker = functools.partial(asyncio.get_running_loop().call_soon_threadsafe, ready.set)
        try:
            handle = await run(
                engine.observe_start,
                world,
                filter=flt,
                after=last_event_id or after,
                capacity=capacity,
                caller=p.caller,
                waker=waker,
            )
        except BaseException:
            st.observe_limits.release(ticket)
            raise
        st.observe_limits.bind(ticket, handle)
        recheck = functools.partial(st.recheck, p)
        return EventStream(
            _finally(
                _stream(engine, handle, ready, max_events, timeout_s, recheck),
                functools.partial(st.observe_limits.release, handle),
            ),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # ------------------------------------------------------------------ index

    @app.get(
        "/index/status",
        summary="Index metadata per world the caller may read",
        responses={**_ok(list[S.IndexStatus]), **_errors(*READ)},
        tags=["index"],
    )
    async def index_status(
        request: Request,
        world: Annotated[str | None, Query(pattern=S.WORLD_PATTERN)] = None,
    ) -> Response:
        p = st.principal(request)
        return json_response(await run(engine.index_status, world, caller=p.caller))

    @app.post(
        "/index/rebuild",
        summary="Rebuild the vector index of one readable world, or of all (operator)",
        responses={**_ok(S.IndexRebuilt), **_errors(*WRITE)},
        tags=["index"],
    )
    async def index_rebuild(
        request: Request, b: Annotated[S.IndexRebuildRequest | None, Body()] = None
    ) -> Response:
        p = st.principal(request)
        world = b.world if b else None  # every world at once is an operator's call
        return json_response(await run(engine.index_rebuild, world, caller=p.caller))

    # ------------------------------------------------------------------ operators

    @app.get(
        "/quarantine",
        summary="Atoms held in quarantine in the worlds the caller operates on",
        responses={**_ok(list[S.Atom]), **_errors(*READ)},
        tags=["operators"],
    )
    async def quarantine_list(
        request: Request,
        world: Annotated[str | None, Query(pattern=S.WORLD_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> Response:
        p = st.principal(request)
        return atoms_response(
            await run(engine.quarantine_list, world, limit=limit, caller=p.caller)
        )

    @app.post(
        "/quarantine/{atom_id}/release",
        summary="Move a held atom back into its world (operator of that world)",
        responses={**_ok(S.Atom), **_errors(*READ, 404)},
        tags=["operators"],
    )
    async def quarantine_release(request: Request, atom_id: str) -> Response:
        p = st.principal(request)
        atom = await run(engine.quarantine_release, atom_id, caller=p.caller)
        return json_response(atom.to_wire(payload_fragment))

    @app.post(
        "/quarantine/{atom_id}/drop",
        summary="Delete a held atom (operator of its world)",
        responses={**_ok(S.QuarantineDropped), **_errors(*READ, 404)},
        tags=["operators"],
    )
    async def quarantine_drop(request: Request, atom_id: str) -> Response:
        p = st.principal(request)
        await run(engine.quarantine_drop, atom_id, caller=p.caller)
        return json_response({"id": atom_id, "dropped": True})

    @app.post(
        "/gc",
        summary="Apply retention, minimum importance and the disk budget now (operator)",
        responses={**_ok(S.GcReport), **_errors(*READ)},
        tags=["operators"],
    )
    async def gc(request: Request) -> Response:
        p = st.principal(request)  # the engine gc's only the worlds the caller operates on
        report = await run(engine.gc, caller=p.caller)
        return json_response(report.to_dict())

    @app.get(
        "/health",
        summary="Operator health",
        responses={**_ok(S.Health), **_errors(401)},
        tags=["operators"],
    )
    async def health(request: Request) -> Response:
        st.principal(request)
        return json_response(await run(_health, st))

    @app.get("/healthz", summary="Liveness", responses=_ok(S.Alive), tags=["operators"])
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get(
        "/readyz",
        summary="Readiness: 503 when storage is unusable",
        responses={
            **_ok(S.Health),
            503: {"model": S.Health, "description": "not ready"},
        },
        tags=["operators"],
    )
    async def readyz() -> Response:
        h = await run(_health, st)
        return json_response(h, 200 if h["storage_ok"] else 503)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=MetricsText,
        responses={
            200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
            **_errors(401),
        },
        tags=["operators"],
    )
    async def prometheus(request: Request) -> Response:
        st.principal(request)
        body = await run(metrics.render)
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    @app.get(
        "/metrics/snapshot",
        summary="The same metrics as JSON",
        responses={**_ok(dict[str, Any]), **_errors(401)},
        tags=["operators"],
    )
    async def metrics_snapshot(request: Request) -> Response:
        st.principal(request)
        return json_response(await run(metrics.snapshot))


def _health(st: NodeState) -> dict[str, Any]:
    out = st.engine.health(
        warn_pct=st.settings.health_disk_warn_pct,
        degraded_pct=st.settings.health_disk_degraded_pct,
        min_free_mb=st.settings.health_min_free_mb,
    )
    pool = st.asks
    out["ask_workers"] = pool.size if pool is not None else 0
    out["ask_workers_ready"] = pool.ready_count if pool is not None else 0
    return swarm_health(out, st.metrics.swarm)


async def _finally(chunks: AsyncIterator[bytes], then: Callable[[], None]) -> AsyncIterator[bytes]:
    """``chunks``, then ``then()`` however they end (the client left, the stream finished)."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        then()


def _sse_error(exc: DWBaseError) -> bytes:
    data = json.dumps({"error": exc.to_dict()}, ensure_ascii=False, separators=(",", ":"))
    return f"event: error\ndata: {data}\n\n".encode()


RECHECK_S = 0.25  # how often a stream asks whether its token still holds
KEEP_ALIVE_S = 15.0
BATCH = 200


async def _stream(
    engine: Engine,
    handle: str,
    ready: asyncio.Event,
    max_events: int | None,
    idle_timeout: float | None,
    recheck: Callable[[], None],
) -> AsyncIterator[bytes]:
    """The SSE body. It waits on ``ready``, which the hub sets when atoms arrive for the
    subscription's empty queue or the subscription ends, and polls only then: an idle stream
    costs no polling. (Atoms of other processes reach the hub through the engine's watcher.)

    ``recheck`` raises once the caller's token is revoked (or auth turned on): the stream then
    sends one ``event: error`` and ends. It is called every 0.25 s and the token file is
    looked at every 0.5 s, so a revocation ends the stream within 1 s."""
    sent = 0
    loop = asyncio.get_running_loop()
    last_activity = last_beat = last_check = loop.time()
    ready.set()  # a resumed stream's backlog is queued already
    try:
        yield b": stream open\n\n"
        while True:
            now = loop.time()
            if now - last_check >= RECHECK_S:
                last_check = now
                try:
                    recheck()
                except DWBaseError as exc:
                    yield _sse_error(exc)
                    return
            if ready.is_set():
                ready.clear()
                try:
                    atoms = engine.observe_poll(handle, BATCH)
                except InvalidHandleError:  # stopped under the stream: say why if it was auth
                    try:
                        recheck()
                    except DWBaseError as exc:
                        yield _sse_error(exc)
                    return
                for atom in atoms:
                    yield _sse(atom)
                    sent += 1
                    if max_events is not None and sent >= max_events:
                        return
                if atoms:
                    last_activity = loop.time()
                    if len(atoms) == BATCH:  # more may be queued: the hub wakes empty queues
                        ready.set()
                    continue
            now = loop.time()
            if idle_timeout is not None and now - last_activity >= idle_timeout:
                return
            if now - last_beat >= KEEP_ALIVE_S:
                last_beat = now
                yield b": keep-alive\n\n"
            wait = min(last_check + RECHECK_S, last_beat + KEEP_ALIVE_S) - now
            if idle_timeout is not None:
                wait = min(wait, last_activity + idle_timeout - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), max(wait, 0.0))
    finally:
        with contextlib.suppress(InvalidHandleError):
            engine.observe_stop(handle)

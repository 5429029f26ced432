"""One DWBase API on every surface: Engine, Client, AsyncDWBase and AsyncClient.

``mypy --strict`` checks this file (pyproject's ``[tool.mypy] files``): ``exercise`` and
``exercise_async`` call every method of :class:`dwbase.DWBaseAPI` and
:class:`dwbase.AsyncDWBaseAPI`, and the assignments in ``test_each_surface_is_its_protocol``
fail to type-check when a surface drifts from its protocol. At run time the same calls go to
a real store and to a real node (uvicorn on 127.0.0.1), and every surface answers the same.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dwbase
from dwbase import AsyncDWBase, AsyncDWBaseAPI, DWBaseAPI, Engine
from dwbase.client import AsyncClient, Client
from dwbase.config import Settings, load_settings
from dwbase.node import start_background
from dwbase.node.server import RunningNode


@dataclass(frozen=True)
class Seen:
    """What a surface answered, without the ids and times that differ between stores."""

    hit_texts: tuple[str, ...]
    replayed: tuple[Any, ...]
    same_atom: bool
    worlds: tuple[tuple[str, ...], ...]
    observed: int
    queued: int
    indexes: tuple[str, ...]
    rebuilt: tuple[str, ...]
    held: tuple[str | None, ...]
    listed_held: int
    released_into: str
    evicted: int
    storage_ok: bool
    filtered: tuple[str, ...]
    refused: str


def exercise(db: DWBaseAPI) -> Seen:
    """Every method of the protocol, with its keyword options, on one surface."""
    first = db.remember(
        "demo",
        "agent-1",
        "observation",
        {"text": "checkout latency 820ms"},
        importance=0.9,
        labels=["latency"],
        flags=["from-test"],
        timestamp="2024-05-01T10:00:00Z",
    )
    db.remember(
        "demo",
        "agent-1",
        "plan",
        payload_json='{"text": "add a cache"}',
        links=[{"target": first, "kind": "references"}],
        vector=None,
    )
    db.remember_atom({"world": "demo", "worker": "agent-1", "payload": {"text": "one"}})
    db.remember("demo", "agent-1", "reflection", text="checkout needs a cache", labels=["web"])
    try:
        db.remember("demo", "some text")  # a worker, and no payload: refused
        refused = ""
    except dwbase.InvalidInputError as exc:
        refused = exc.code
    db.remember_batch([{"world": "ops", "worker": "agent-1", "payload": {"n": n}} for n in (1, 2)])
    answer = db.ask(
        "demo",
        "why is checkout slow?",
        filter={"kinds": ["observation"]},
        limit=5,
        as_of=None,
        rank="hybrid",
        weights=None,
        current_only=False,
        vector=None,
    )
    replayed = db.replay(
        "demo",
        filter=None,
        kinds=["observation", "plan"],
        labels=None,
        flags=None,
        since="2000-01-01T00:00:00Z",
        until=None,
        limit=10,
        as_of=None,
        order="append",
        current_only=False,
        after=None,
    )
    narrowed = db.ask(
        "demo",
        "checkout",
        kinds=["reflection", "observation"],
        labels=["web"],
        flags=None,
        since="2000-01-01T00:00:00Z",
        until=None,
    )
    same_atom = db.get(first) == db.inspect(first)
    db.create_world("incident:42", description="checkout outage", labels=["team:web"])
    db.archive_world("incident:42")
    active = db.list_worlds()
    everything = db.list_worlds(include_archived=True)
    db.resume_world("incident:42")
    db.set_policy(
        "ops",
        retention_days=30,
        retention_min_days=1,
        min_importance=0.1,
        replication_allow=["peer-*"],
        replication_deny=None,
    )
    handle = db.observe_start(
        "demo", filter=None, after=None, capacity=10, drop_policy="drop_oldest"
    )
    db.remember("demo", "agent-1", payload={"text": "a new atom"})
    queued = db.observe_stats(handle).queued_count
    observed = db.observe_poll(handle, max=10)
    db.observe_stop(handle)
    indexes = db.index_status()
    rebuilt = db.index_rebuild("demo")
    held = db.remember("ml", "trainer", payload_json='{"loss": NaN}')
    dropped = db.remember("ml", "trainer", payload_json='{"loss": Infinity}')
    listed = db.quarantine_list("ml", limit=10)
    released = db.quarantine_release(held)
    db.quarantine_drop(dropped)
    report = db.gc()
    health = db.health()
    return Seen(
        hit_texts=tuple(h.atom.payload["text"] for h in answer.hits),
        replayed=tuple((a.kind, a.payload_json, a.labels, a.flags) for a in replayed),
        same_atom=same_atom,
        worlds=(tuple(active), tuple(everything), tuple(db.list_worlds())),
        observed=len(observed),
        queued=queued,
        indexes=tuple(sorted(s["world"] for s in indexes)),
        rebuilt=tuple(rebuilt["worlds"]),
        held=(held.held_reason, dropped.held_reason),
        listed_held=len(listed),
        released_into=released.world,
        evicted=report.evicted,
        storage_ok=bool(health["storage_ok"]),
        filtered=tuple(h.atom.payload["text"] for h in narrowed.hits),
        refused=refused,
    )


async def exercise_async(db: AsyncDWBaseAPI) -> Seen:
    """:func:`exercise`, awaited."""
    first = await db.remember(
        "demo",
        "agent-1",
        "observation",
        {"text": "checkout latency 820ms"},
        importance=0.9,
        labels=["latency"],
        flags=["from-test"],
        timestamp="2024-05-01T10:00:00Z",
    )
    await db.remember(
        "demo",
        "agent-1",
        "plan",
        payload_json='{"text": "add a cache"}',
        links=[{"target": first, "kind": "references"}],
        vector=None,
    )
    await db.remember_atom({"world": "demo", "worker": "agent-1", "payload": {"text": "one"}})
    await db.remember(
        "demo", "agent-1", "reflection", text="checkout needs a cache", labels=["web"]
    )
    try:
        await db.remember("demo", "some text")  # a worker, and no payload: refused
        refused = ""
    except dwbase.InvalidInputError as exc:
        refused = exc.code
    await db.remember_batch(
        [{"world": "ops", "worker": "agent-1", "payload": {"n": n}} for n in (1, 2)]
    )
    answer = await db.ask(
        "demo",
        "why is checkout slow?",
        filter={"kinds": ["observation"]},
        limit=5,
        as_of=None,
        rank="hybrid",
        weights=None,
        current_only=False,
        vector=None,
    )
    replayed = await db.replay(
        "demo",
        filter=None,
        kinds=["observation", "plan"],
        labels=None,
        flags=None,
        since="2000-01-01T00:00:00Z",
        until=None,
        limit=10,
        as_of=None,
        order="append",
        current_only=False,
        after=None,
    )
    narrowed = await db.ask(
        "demo",
        "checkout",
        kinds=["reflection", "observation"],
        labels=["web"],
        flags=None,
        since="2000-01-01T00:00:00Z",
        until=None,
    )
    same_atom = await db.get(first) == await db.inspect(first)
    await db.create_world("incident:42", description="checkout outage", labels=["team:web"])
    await db.archive_world("incident:42")
    active = await db.list_worlds()
    everything = await db.list_worlds(include_archived=True)
    await db.resume_world("incident:42")
    await db.set_policy(
        "ops",
        retention_days=30,
        retention_min_days=1,
        min_importance=0.1,
        replication_allow=["peer-*"],
        replication_deny=None,
    )
    handle = await db.observe_start(
        "demo", filter=None, after=None, capacity=10, drop_policy="drop_oldest"
    )
    await db.remember("demo", "agent-1", payload={"text": "a new atom"})
    queued = (await db.observe_stats(handle)).queued_count
    observed = await db.observe_poll(handle, max=10)
    await db.observe_stop(handle)
    indexes = await db.index_status()
    rebuilt = await db.index_rebuild("demo")
    held = await db.remember("ml", "trainer", payload_json='{"loss": NaN}')
    dropped = await db.remember("ml", "trainer", payload_json='{"loss": Infinity}')
    listed = await db.quarantine_list("ml", limit=10)
    released = await db.quarantine_release(held)
    await db.quarantine_drop(dropped)
    report = await db.gc()
    health = await db.health()
    return Seen(
        hit_texts=tuple(h.atom.payload["text"] for h in answer.hits),
        replayed=tuple((a.kind, a.payload_json, a.labels, a.flags) for a in replayed),
        same_atom=same_atom,
        worlds=(tuple(active), tuple(everything), tuple(await db.list_worlds())),
        observed=len(observed),
        queued=queued,
        indexes=tuple(sorted(s["world"] for s in indexes)),
        rebuilt=tuple(rebuilt["worlds"]),
        held=(held.held_reason, dropped.held_reason),
        listed_held=len(listed),
        released_into=released.world,
        evicted=report.evicted,
        storage_ok=bool(health["storage_ok"]),
        filtered=tuple(h.atom.payload["text"] for h in narrowed.hits),
        refused=refused,
    )


def _settings(data: Path) -> Settings:
    """A node on 127.0.0.1, a free port, no tokens (loopback is open), its own data dir."""
    overrides = {"data_dir": str(data), "listen": "127.0.0.1:0", "access_log": False}
    return load_settings(None, overrides, environ={})


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    with start_background(_settings(tmp_path / "node")) as running:
        yield running


def test_each_surface_is_its_protocol(tmp_path: Path, node: RunningNode) -> None:
    # mypy checks these assignments: a surface that drifts from its protocol fails them.
    api: DWBaseAPI = dwbase.open(":memory:")
    api.close()
    api = Client(node.url)
    api.close()
    aapi: AsyncDWBaseAPI = dwbase.open_async(":memory:")
    asyncio.run(aapi.close())
    aapi = AsyncClient(node.url)
    asyncio.run(aapi.close())
    # And at run time, for readers who check with isinstance().
    with dwbase.open(":memory:") as db, Client(node.url) as client:
        assert isinstance(db, DWBaseAPI) and isinstance(client, DWBaseAPI)
    assert isinstance(AsyncDWBase(dwbase.open(":memory:")), AsyncDWBaseAPI)


@pytest.fixture
def reference(tmp_path: Path) -> Seen:
    """What the embedded engine answers: every other surface must answer the same."""
    with dwbase.open(tmp_path / "reference") as db:
        return exercise(db)


def test_the_embedded_engine_answers_every_method(reference: Seen) -> None:
    assert reference.hit_texts[0] == "checkout latency 820ms"
    assert [kind for kind, *_ in reference.replayed] == ["observation", "plan", "observation"]
    assert reference.replayed[0][2:] == (("latency",), ("from-test",))
    assert reference.same_atom
    active, everything, last = reference.worlds
    assert "incident:42" not in active and "incident:42" in everything
    assert {"demo", "ops", "incident:42", "ml"} <= set(last)
    assert reference.observed == reference.queued == 1
    assert {"demo", "ops", "incident:42"} <= set(reference.indexes)
    assert reference.rebuilt == ("demo",)
    assert reference.held == ("impossible_number", "impossible_number")
    assert reference.listed_held == 2 and reference.released_into == "ml"
    assert reference.evicted == 0 and reference.storage_ok
    assert reference.filtered == ("checkout needs a cache",)
    assert reference.refused == "invalid_input"


def test_the_client_answers_every_method_like_the_engine(
    node: RunningNode, reference: Seen
) -> None:
    with Client(node.url) as db:
        assert exercise(db) == reference


def test_the_async_engine_answers_every_method_like_the_engine(
    tmp_path: Path, reference: Seen
) -> None:
    async def main() -> Seen:
        async with dwbase.open_async(tmp_path / "store") as db:
            return await exercise_async(db)

    assert asyncio.run(main()) == reference


def test_the_async_client_answers_every_method_like_the_engine(
    node: RunningNode, reference: Seen
) -> None:
    async def main() -> Seen:
        async with AsyncClient(node.url) as db:
            return await exercise_async(db)

    assert asyncio.run(main()) == reference


def _members(protocol: type) -> set[str]:
    return {n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v)}


def _called_on_db(fn: Callable[..., Any]) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "db"
    }


def test_the_exercises_call_every_method_of_the_protocols() -> None:
    members = _members(DWBaseAPI)
    assert _members(AsyncDWBaseAPI) == members
    assert {"remember", "ask", "replay", "gc", "health", "observe_poll"} <= members
    assert _called_on_db(exercise) | {"close"} == members
    assert _called_on_db(exercise_async) | {"close"} == members


def _shape(fn: Callable[..., Any], protocol_fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """Names, kinds and defaults of ``fn``'s parameters, less the keyword-only extras that a
    surface may add (the engine's ``caller=``) that the protocol does not name."""
    wanted = inspect.signature(protocol_fn).parameters
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.name in wanted or p.kind is not p.KEYWORD_ONLY or p.default is p.empty
    ]


@pytest.mark.parametrize(
    ("surface", "protocol", "coroutines"),
    [
        (Engine, DWBaseAPI, False),
        (Client, DWBaseAPI, False),
        (AsyncDWBase, AsyncDWBaseAPI, True),
        (AsyncClient, AsyncDWBaseAPI, True),
    ],
)
def test_every_surface_has_every_method_with_the_protocols_parameters(
    surface: type, protocol: type, coroutines: bool
) -> None:
    for name in sorted(_members(DWBaseAPI)):
        method = getattr(surface, name, None)
        assert method is not None, f"{surface.__name__} has no {name}"
        assert inspect.iscoroutinefunction(method) is coroutines, (surface.__name__, name)
        want = getattr(protocol, name)
        assert _shape(method, want) == _shape(want, want), (surface.__name__, name)
        assert _shape(getattr(AsyncDWBaseAPI, name), want) == _shape(
            getattr(DWBaseAPI, name), want
        ), name


def test_the_async_classes_are_not_subclasses_of_the_sync_ones() -> None:
    assert not issubclass(AsyncClient, Client)
    assert not issubclass(AsyncDWBase, Engine)

"""``DWBaseStore`` against LangGraph's own ``InMemoryStore``: the same sequence of operations
gives the same observable results (gets, searches with filters and paging, namespace
listing, batches), sync and async; and the history the immutable atoms keep."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import BaseStore, GetOp, IndexConfig, Item, PutOp, SearchItem
from langgraph.store.memory import InMemoryStore

import dwbase
from dwbase.client import Client
from dwbase.config import load_settings
from dwbase.engine import Engine
from dwbase.errors import CapabilityDeniedError
from dwbase.integrations.langgraph import DWBaseStore
from dwbase.node import start_background

Step = tuple[Any, ...]

SCENARIO: list[Step] = [
    ("put", ("users", "u1"), "k1", {"name": "Ada", "lang": "python", "score": 5}),
    ("put", ("users", "u1"), "k2", {"name": "Bob", "lang": "rust", "score": 3}),
    (
        "put",
        ("users", "u2"),
        "k1",
        {"name": "Cy", "lang": "python", "score": 9, "tags": ["a", "b"], "meta": {"tier": "gold"}},
    ),
    ("put", ("docs", "team a", "v1"), "readme", {"text": "how to deploy"}),
    ("put", ("docs", "café", "v2"), "notes", {"text": "ünïcode/slashes.dots"}),
    ("get", ("users", "u1"), "k1"),
    ("get", ("users", "u1"), "missing"),
    ("search", ("users",), {}),
    ("search", ("users",), {"filter": {"lang": "python"}}),
    ("search", ("users",), {"filter": {"score": {"$gte": 4}}}),
    ("search", ("users",), {"filter": {"score": {"$gt": 5}}}),
    ("search", ("users",), {"filter": {"score": {"$lte": 5, "$eq": 5}}}),
    ("search", ("users",), {"filter": {"score": {"$lt": 5}, "lang": {"$ne": "python"}}}),
    ("search", ("users",), {"filter": {"meta": {"tier": "gold"}}}),
    ("search", ("users",), {"filter": {"tags": ["a", "b"]}}),
    ("search", ("users",), {"filter": {"tags": ["a"]}}),
    ("search", (), {"limit": 2, "offset": 1}),
    ("search", ("docs", "team a"), {}),
    ("put", ("users", "u1"), "k1", {"name": "Ada", "lang": "go", "score": 6}),  # supersedes
    ("get", ("users", "u1"), "k1"),
    ("search", ("users", "u1"), {}),
    ("search", ("users",), {"filter": {"lang": "python"}}),
    ("delete", ("users", "u1"), "k2"),
    ("get", ("users", "u1"), "k2"),
    ("search", ("users",), {}),
    ("delete", ("users", "u1"), "never-there"),
    ("put", ("users", "u1"), "k2", {"name": "Bob again"}),  # born again: listed last
    ("search", ("users", "u1"), {}),
    ("list", {}),
    ("list", {"prefix": ("users",)}),
    ("list", {"suffix": ("v1",)}),
    ("list", {"prefix": ("docs", "*")}),
    ("list", {"prefix": ("docs",), "suffix": ("v2",)}),
    ("list", {"max_depth": 1}),
    ("list", {"limit": 2, "offset": 1}),
    # Reads in a batch see the store as it was; the last put of a key in a batch wins.
    (
        "batch",
        [
            PutOp(("users", "u3"), "k", {"x": 1}),
            GetOp(("users", "u3"), "k"),
            PutOp(("users", "u3"), "k", {"x": 2}),
        ],
    ),
    ("get", ("users", "u3"), "k"),
    ("search", ("users",), {"limit": 3}),
]
"""No step reads a namespace before it is written: InMemoryStore lists a namespace that was
only ever read (its dict makes an empty entry on a get), which DWBase does not copy."""


def view(result: Any) -> Any:
    """What a caller observes of a result (times are the stores' own clocks)."""
    if isinstance(result, SearchItem | Item):
        return (result.namespace, result.key, result.value)
    if isinstance(result, list):
        return [view(r) for r in result]
    return result


def run_sync(store: BaseStore, step: Step) -> Any:
    match step:
        case ("put", ns, key, value):
            return store.put(ns, key, value)
        case ("get", ns, key):
            return store.get(ns, key)
        case ("delete", ns, key):
            return store.delete(ns, key)
        case ("search", prefix, kw):
            return store.search(prefix, **kw)
        case ("list", kw):
            return store.list_namespaces(**kw)
        case ("batch", ops):
            return store.batch(ops)
    raise AssertionError(step)


async def run_async(store: BaseStore, step: Step) -> Any:
    match step:
        case ("put", ns, key, value):
            return await store.aput(ns, key, value)
        case ("get", ns, key):
            return await store.aget(ns, key)
        case ("delete", ns, key):
            return await store.adelete(ns, key)
        case ("search", prefix, kw):
            return await store.asearch(prefix, **kw)
        case ("list", kw):
            return await store.alist_namespaces(**kw)
        case ("batch", ops):
            return await store.abatch(ops)
    raise AssertionError(step)


@pytest.fixture
def db() -> Iterator[Engine]:
    engine = dwbase.open(":memory:")
    yield engine
    engine.close()


def test_dwbase_store_answers_like_langgraphs_in_memory_store(db: Engine) -> None:
    ours, theirs = DWBaseStore(db), InMemoryStore()
    for step in SCENARIO:
        assert view(run_sync(ours, step)) == view(run_sync(theirs, step)), step


def test_dwbase_store_answers_like_langgraphs_in_memory_store_async(db: Engine) -> None:
    ours, theirs = DWBaseStore(db), InMemoryStore()

    async def scenario() -> None:
        for step in SCENARIO:
            assert view(await run_async(ours, step)) == view(await run_async(theirs, step)), step

    asyncio.run(scenario())


def _bag_of_words(texts: Sequence[str]) -> list[list[float]]:
    vocab = ["python", "rust", "go", "deploy", "ada", "bob"]
    out = []
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        out.append([float(words.count(w)) + 0.01 for w in vocab])
    return out


def test_a_search_with_a_query_finds_the_matching_item_first_like_an_indexed_store(
    db: Engine,
) -> None:
    ours = DWBaseStore(db)
    index: IndexConfig = {"dims": 6, "embed": _bag_of_words, "fields": ["$"]}
    theirs = InMemoryStore(index=index)
    for step in SCENARIO[:5]:
        run_sync(ours, step), run_sync(theirs, step)
    for query, key in [("rust", ("u1", "k2")), ("deploy", ("team a", "readme"))]:
        a, b = ours.search((), query=query), theirs.search((), query=query)
        assert (a[0].namespace[1], a[0].key) == key == (b[0].namespace[1], b[0].key)
        assert a[0].score is not None and a[0].score > 0
        assert sorted(map(view, a)) == sorted(map(view, b))  # the same items, all of them
    hits = ours.search(("users",), query="python", filter={"score": {"$gt": 6}})
    assert [h.value["name"] for h in hits] == ["Cy"]


def test_replay_keeps_every_version_the_current_view_hides(db: Engine) -> None:
    store = DWBaseStore(db, world_prefix="tenant:acme/lg/")
    store.put(("users", "u1"), "k", {"v": 1})
    store.put(("users", "u1"), "k", {"v": 2})
    store.delete(("users", "u1"), "k")
    assert store.get(("users", "u1"), "k") is None
    assert store.search(("users",)) == []
    history = db.replay("tenant:acme/lg/users/u1")
    assert [a.payload.get("value") for a in history] == [{"v": 1}, {"v": 2}, None]
    assert history[2].payload == {"key": "k", "deleted": True}
    assert [[(link.kind, link.target) for link in a.links] for a in history] == [
        [],
        [("supersedes", history[0].id)],
        [("supersedes", history[1].id)],
    ]
    current = db.replay("tenant:acme/lg/users/u1", current_only=True)
    assert [a.id for a in current] == [history[2].id]  # only the tombstone is not superseded


def test_a_namespace_comes_back_from_its_world_unchanged(db: Engine) -> None:
    store = DWBaseStore(db)
    odd = ("a b", "c/d", "é-ü", "x:y_z", "%41", "1")
    store.put(odd, "k", {"v": 1})
    (world,) = db.list_worlds()
    assert world == store.world(odd) and store.namespace(world) == odd
    assert store.list_namespaces() == [odd]


def test_on_a_node_a_token_sees_only_the_namespaces_of_its_worlds(tmp_path: Path) -> None:
    settings = load_settings(
        None, {"data_dir": str(tmp_path / "n"), "access_log": False}, environ={}
    )
    with start_background(settings) as node:
        owner = DWBaseStore(node.engine)
        owner.put(("users", "ada"), "k", {"v": "ada's"})
        owner.put(("users", "bob"), "k", {"v": "bob's"})
        secret, _ = node.tokens.create(
            "ada-agent", read=["langgraph/users/ada"], write=["langgraph/users/ada"]
        )
        with Client(node.url, token=secret) as client:
            store = DWBaseStore(client)
            assert store.list_namespaces() == [("users", "ada")]
            assert [i.value for i in store.search(("users",))] == [{"v": "ada's"}]
            store.put(("users", "ada"), "k", {"v": "ada's, updated"})
            updated = store.get(("users", "ada"), "k")
            assert updated is not None and updated.value == {"v": "ada's, updated"}
            with pytest.raises(CapabilityDeniedError):
                store.get(("users", "bob"), "k")
            with pytest.raises(CapabilityDeniedError):
                store.put(("users", "bob"), "k", {"v": "overwritten"})
        bob = owner.get(("users", "bob"), "k")
        assert bob is not None and bob.value == {"v": "bob's"}
        assert node.engine.replay("langgraph/users/ada")[-1].worker == "ada-agent"

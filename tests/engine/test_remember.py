from __future__ import annotations

import math
from pathlib import Path

import pytest

import dwbase
from dwbase import InvalidInputError, PayloadTooLargeError


def remember(db: dwbase.Engine, text: str, **kw: object) -> str:
    args: dict[str, object] = {"world": "demo", "worker": "agent-1", "kind": "observation"}
    args.update(kw)
    return db.remember(payload={"text": text}, **args)  # type: ignore[arg-type]


def test_remember_returns_time_ordered_unique_ids(db: dwbase.Engine) -> None:
    ids = [remember(db, f"event {i}") for i in range(50)]
    assert len(set(ids)) == 50
    assert ids == sorted(ids)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.01, 1.01, True, "0.5", None])
def test_importance_outside_unit_interval_is_rejected_and_nothing_stored(
    db: dwbase.Engine, bad: object
) -> None:
    with pytest.raises(InvalidInputError) as err:
        remember(db, "x", importance=bad)
    assert err.value.code == "invalid_input"
    assert db.storage.count() == 0


def test_timestamps_with_offsets_are_normalised_to_utc(db: dwbase.Engine) -> None:
    aid = remember(db, "x", timestamp="2024-05-01T14:30:00.5+02:00")
    assert db.get(aid).timestamp == "2024-05-01T12:30:00.500000Z"


def test_empty_timestamp_means_now(db: dwbase.Engine, clock: object) -> None:
    aid = remember(db, "x", timestamp="")
    assert db.get(aid).timestamp == "2026-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "ts", ["2024-13-01T00:00:00Z", "yesterday", "2024-01-01", "2024-01-01T00:00:00"]
)
def test_bad_timestamps_are_rejected(db: dwbase.Engine, ts: str) -> None:
    with pytest.raises(InvalidInputError):
        remember(db, "x", timestamp=ts)


@pytest.mark.parametrize("world", ["", "a b", "x" * 257, "tab\tworld", "é"])
def test_bad_world_keys_are_rejected(db: dwbase.Engine, world: str) -> None:
    with pytest.raises(InvalidInputError):
        remember(db, "x", world=world)


def test_world_keys_accept_tenant_paths(db: dwbase.Engine) -> None:
    aid = remember(db, "x", world="tenant:acme/support.v1-eu_2")
    assert db.get(aid).world == "tenant:acme/support.v1-eu_2"


def test_payload_json_must_be_valid_json(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError):
        db.remember_atom(
            {
                "world": "w",
                "worker": "a",
                "kind": "observation",
                "importance": 0.5,
                "payload_json": "{not json",
            }
        )
    aid = db.remember_atom(
        {
            "world": "w",
            "worker": "a",
            "kind": "observation",
            "importance": 0.5,
            "payload_json": '{"a": [1, 2]}',
        }
    )
    assert db.get(aid).payload_json == '{"a": [1, 2]}'


def test_payload_over_the_size_limit_is_payload_too_large(tmp_path: Path) -> None:
    db = dwbase.open(":memory:", max_payload_bytes=100)
    with pytest.raises(PayloadTooLargeError) as err:
        db.remember("w", "a", "observation", {"text": "x" * 200})
    assert err.value.code == "payload_too_large"


def test_vectors_must_be_finite_and_of_the_worlds_dimension(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError, match="finite"):
        remember(db, "x", vector=[0.1, math.nan] + [0.0] * 254)
    with pytest.raises(InvalidInputError, match="expects 256"):
        remember(db, "x", vector=[0.1] * 3)
    aid = remember(db, "x", vector=[0.5] * 256)
    assert db.get(aid).vector == tuple([0.5] * 256)


def test_unknown_kind_and_link_kind_are_rejected(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError, match="kind 'thought'"):
        remember(db, "x", kind="thought")
    with pytest.raises(InvalidInputError, match="link kind"):
        remember(db, "x", links=[{"target": "a", "kind": "likes"}])


def test_bare_string_link_is_a_references_link(db: dwbase.Engine) -> None:
    a = remember(db, "first")
    b = remember(db, "second", links=[a, {"target": a, "kind": "confirms"}])
    kinds = {(x.target, x.kind) for x in db.get(b).links}
    assert kinds == {(a, "references"), (a, "confirms")}


def test_batch_is_all_or_nothing(db: dwbase.Engine) -> None:
    good = {
        "world": "w",
        "worker": "a",
        "kind": "observation",
        "importance": 0.5,
        "payload": {"text": "ok"},
    }
    bad = dict(good, importance=2.0)
    with pytest.raises(InvalidInputError) as err:
        db.remember_batch([good, good, bad])
    assert err.value.details["index"] == 2
    assert db.storage.count() == 0
    ids = db.remember_batch([good, good])
    assert len(ids) == 2 and db.storage.count() == 2


def test_unknown_atom_fields_are_rejected(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError, match="unknown atom field"):
        db.remember_atom(
            {"world": "w", "worker": "a", "kind": "observation", "importance": 0.5, "colour": "red"}
        )


def test_reserved_quarantine_worlds_cannot_be_written(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError, match="quarantine"):
        remember(db, "x", world="quarantine:demo")


def test_bad_policy_labels_are_rejected(db: dwbase.Engine) -> None:
    with pytest.raises(InvalidInputError):
        remember(db, "x", labels=["policy:retention_days=soon"])
    with pytest.raises(InvalidInputError):
        remember(db, "x", labels=["policy:colour=red"])
    with pytest.raises(InvalidInputError):
        remember(db, "x", labels=["world_status:sleeping"])


def test_get_of_unknown_id_is_not_found(db: dwbase.Engine) -> None:
    with pytest.raises(dwbase.NotFoundError):
        db.get("nope")


def test_store_is_usable_from_many_threads(sqlite_db: dwbase.Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> str:
        aid = remember(sqlite_db, f"thread {i}")
        sqlite_db.ask("demo", f"thread {i}")
        return aid

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(work, range(200)))
    assert len(set(ids)) == 200
    assert len(sqlite_db.replay("demo")) == 200
    assert sqlite_db.check().ok


def test_async_twins_give_the_same_results(tmp_path: Path) -> None:
    import asyncio

    async def main() -> None:
        async with dwbase.open_async(str(tmp_path / "s")) as db:
            aid = await db.remember("w", "a", "observation", {"text": "async works"})
            ans = await db.ask("w", "async")
            assert ans.hits[0].atom.id == aid
            assert [a.id for a in await db.replay("w")] == [aid]

    asyncio.run(main())


def test_open_rejects_unknown_options() -> None:
    with pytest.raises(InvalidInputError, match="unknown option"):
        dwbase.open(":memory:", colour="red")

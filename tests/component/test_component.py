"""The real WASI component under wasmtime: every WIT function, every v2 error code, tenant
enforcement, limits, persistence across instances, observe handles, health and metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from component.conftest import WORLD, Instantiate, atom_filter, new_atom, question
from dwbase.component.manifest import build_manifest

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]


def ok(result: Any) -> Any:
    assert isinstance(result, tuple) and result[0] == "ok", result
    return result[1]


def err(result: Any) -> dict[str, Any]:
    assert isinstance(result, tuple) and result[0] == "err", result
    error: dict[str, Any] = result[1]
    assert isinstance(json.loads(error["details_json"]), dict)
    return error


def test_the_component_exports_every_operation_of_the_manifest(db: Any) -> None:
    manifest = build_manifest(ROOT / "wit")
    for op in manifest["operations"]:
        fn = db.func(op["name"])
        params = [name.replace("-", "_") for name, _ in fn.type(db.store).params]
        assert params == list(op["input"]["properties"]), op["name"]
    with pytest.raises(LookupError):
        db.func("drop-everything")


def test_remember_then_ask_returns_the_atom_with_its_links(db: Any) -> None:
    first = db.call("remember", new_atom("checkout latency 820ms"))
    assert len(first) == 36
    second = ok(
        db.call(
            "remember-v2",
            new_atom("latency confirmed by tracing", links=[{"target": first, "kind": "confirms"}]),
        )
    )
    answer = ok(db.call("ask-v2", question("checkout latency")))
    assert {a["id"] for a in answer["supporting_atoms"]} == {first, second}
    assert "latency" in answer["text"]
    by_id = {a["id"]: a for a in answer["supporting_atoms"]}
    assert by_id[second]["links"] == [{"target": first, "kind": "confirms"}]
    assert by_id[first]["worker"] == "component"  # DWBASE_WORKER_ID's default
    v1 = db.call("ask", question("checkout latency"))
    assert set(v1) == {"world", "text", "supporting_atoms"} and v1["supporting_atoms"]


def test_replay_returns_atoms_in_order_under_the_filter(db: Any) -> None:
    ids = [
        db.call("remember", new_atom(f"fact {i}", labels=["x"] if i % 2 else [])) for i in range(4)
    ]
    assert [a["id"] for a in db.call("replay", WORLD, atom_filter())] == ids
    only_x = ok(db.call("replay-v2", WORLD, atom_filter(labels=["x"])))
    assert [a["id"] for a in only_x] == [ids[1], ids[3]]
    assert len(db.call("replay", WORLD, atom_filter(limit=2))) == 2


@pytest.mark.parametrize(
    ("fields", "env", "code"),
    [
        ({"world": "tenant:other/notes"}, {}, "capability_denied"),
        ({"world": "notes"}, {}, "capability_denied"),
        (
            {"payload_json": json.dumps({"text": "x" * 2000})},
            {"DWBASE_MAX_PAYLOAD_BYTES": "1000"},
            "payload_too_large",
        ),
        ({"importance": 0.9}, {}, "importance_cap"),
        ({"kind": "plan"}, {}, "kind_not_allowed"),
        ({"labels": ["policy:retention_days=1"]}, {}, "label_not_allowed"),
        ({"labels": ["secret"]}, {"DWBASE_ALLOWED_LABELS": "fact,preference"}, "label_not_allowed"),
        ({"payload_json": "not json"}, {}, "invalid_input"),
        ({"importance": float("nan")}, {}, "invalid_input"),
        ({"importance": 1.5}, {}, "invalid_input"),
        ({}, {"DWBASE_IMPORTANCE_CAP": "high"}, "invalid_input"),
        ({}, {"DWBASE_DATA_DIR": "/not-preopened/store"}, "storage_error"),
    ],
)
def test_a_refused_remember_is_a_stable_error_in_v2_and_an_empty_id_in_v1(
    instantiate: Instantiate, fields: dict[str, Any], env: dict[str, str], code: str
) -> None:
    db = instantiate(env)
    error = err(db.call("remember-v2", new_atom(**fields)))
    assert error["code"] == code, error
    assert error["message"]
    assert db.call("remember", new_atom(**fields)) == ""
    # The instance keeps working after the refusal: nothing trapped.
    assert db.call("health")["status"] in ("ready", "degraded")


def test_a_bad_variable_is_named_in_the_error(instantiate: Instantiate) -> None:
    db = instantiate({"DWBASE_ENFORCE_TENANT_NAMESPACE": "maybe"})
    error = err(db.call("health-v2"))
    assert error["code"] == "invalid_input"
    assert "DWBASE_ENFORCE_TENANT_NAMESPACE" in error["message"]
    assert db.call("health")["status"] == "degraded"


def test_the_tenant_namespace_is_enforced_on_every_read(db: Any) -> None:
    other = "tenant:other/notes"
    assert err(db.call("ask-v2", question("x", world=other)))["code"] == "capability_denied"
    assert err(db.call("replay-v2", other, atom_filter(other)))["code"] == "capability_denied"
    assert err(db.call("observe-start-v2", atom_filter(other)))["code"] == "capability_denied"
    assert db.call("replay", other, atom_filter(other)) == []
    assert db.call("observe-start", atom_filter(other)) == ""
    assert db.call("ask", question("x", world=other))["supporting_atoms"] == []


def test_tenant_enforcement_can_be_turned_off_and_worlds_narrowed(
    instantiate: Instantiate,
) -> None:
    free = instantiate({"DWBASE_ENFORCE_TENANT_NAMESPACE": "off"})
    assert ok(free.call("remember-v2", new_atom(world="shared")))
    narrow = instantiate(
        {
            "DWBASE_ALLOW_WRITE_WORLDS": f"{WORLD}",
            "DWBASE_ALLOW_READ_PREFIXES": "tenant:acme/pub",
        }
    )
    assert ok(narrow.call("remember-v2", new_atom()))
    denied = err(narrow.call("remember-v2", new_atom(world="tenant:acme/elsewhere")))
    assert denied["code"] == "capability_denied"
    assert err(narrow.call("replay-v2", WORLD, atom_filter()))["code"] == "capability_denied"
    assert (
        ok(narrow.call("replay-v2", "tenant:acme/public", atom_filter("tenant:acme/public"))) == []
    )


def test_atoms_persist_across_instances_over_the_same_directory(
    instantiate: Instantiate, tmp_path: Path
) -> None:
    first = instantiate()
    aid = ok(first.call("remember-v2", new_atom("customer 42 prefers email")))
    del first
    second = instantiate()
    answer = ok(second.call("ask-v2", question("how does customer 42 like to be contacted")))
    assert [a["id"] for a in answer["supporting_atoms"]][:1] == [aid]
    assert (tmp_path / "data" / "atoms.log").stat().st_size > 0
    elsewhere = instantiate(data_dir=tmp_path / "other")
    assert elsewhere.call("replay", WORLD, atom_filter()) == []


def test_observe_handles_deliver_count_and_end(instantiate: Instantiate) -> None:
    db = instantiate({"DWBASE_OBSERVE_QUEUE_CAPACITY": "2"})
    handle = ok(db.call("observe-start-v2", atom_filter()))
    assert db.call("observe-poll", handle, 10) == []
    ids = [db.call("remember", new_atom(f"event {i}")) for i in range(3)]
    stats = ok(db.call("observe-stats-v2", handle))
    assert stats["queued_count"] == 2 and stats["dropped_count"] == 1
    got = ok(db.call("observe-poll-v2", handle, 10))
    assert [a["id"] for a in got] == ids[1:]  # drop_oldest kept the newest two
    assert db.call("observe-stats", handle)["queued_count"] == 0
    assert ok(db.call("observe-stop-v2", handle)) is None
    assert err(db.call("observe-poll-v2", handle, 10))["code"] == "invalid_handle"
    assert err(db.call("observe-stop-v2", handle))["code"] == "invalid_handle"
    assert err(db.call("observe-stats-v2", "nope"))["code"] == "invalid_handle"
    assert db.call("observe-poll", handle, 10) == []
    assert db.call("observe-stats", "nope") == {
        "handle": "nope",
        "queued_count": 0,
        "dropped_count": 0,
        "last_event_ms": None,
        "warnings": [],
    }
    assert db.call("observe-stop", "nope") is None
    assert err(db.call("observe-start-v2", atom_filter(None)))["code"] == "invalid_input"


def test_observe_publishes_an_atom_without_storing_it(db: Any) -> None:
    handle = db.call("observe-start", atom_filter())
    aid = db.call("remember", new_atom("stored"))
    stored = db.call("replay", WORLD, atom_filter())[0]
    transient = {**stored, "id": aid[:-4] + "ffff", "payload_json": '{"text": "passing by"}'}
    assert db.call("observe", transient) == 1
    polled = db.call("observe-poll", handle, 10)
    assert [a["payload_json"] for a in polled][-1] == '{"text": "passing by"}'
    assert len(db.call("replay", WORLD, atom_filter())) == 1
    assert db.call("observe", {**stored, "world": "tenant:other/x"}) == 0


def test_health_and_metrics_report_the_store(db: Any) -> None:
    health = ok(db.call("health-v2"))
    assert health["status"] == "ready" and health["storage_ok"] and health["index_ok"]
    assert health["disk_pressure"] == "unknown"  # WASI cannot see the filesystem's size
    for i in range(3):
        db.call("remember", new_atom(f"fact {i}"))
    db.call("remember", new_atom(kind="plan"))
    db.call("ask", question("fact"))
    after = db.call("health")
    assert after["store_bytes"] > health["store_bytes"]
    metrics = ok(db.call("metrics-snapshot"))
    counters = {
        (m["name"], tuple((x["name"], x["value"]) for x in m["labels"])): m["value"]
        for m in metrics["counters"]
    }
    assert counters[("dwbase_atoms_total", ())] == 3
    assert counters[("dwbase_component_errors_total", (("code", "kind_not_allowed"),))] == 1
    gauges = {m["name"]: m["value"] for m in metrics["gauges"]}
    assert gauges["dwbase_atoms"] == 3
    hist = {h["name"]: h for h in metrics["histograms"]}
    assert hist["dwbase_remember_duration_seconds"]["count"] == 3
    assert hist["dwbase_ask_duration_seconds"]["count"] == 1
    assert hist["dwbase_ask_duration_seconds"]["sum"] > 0


def test_the_embedding_example_runs_against_the_built_component(
    component_wasm: Path, component_host: Any, tmp_path: Path
) -> None:
    import subprocess
    import sys

    del component_host  # compiled once for the session; the example finds it cached
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "component_host.py"),
            str(component_wasm),
            str(tmp_path / "memory"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "remember-v2: ok" in proc.stdout
    assert "refund approved" in proc.stdout
    assert "another tenant's world: err capability_denied" in proc.stdout

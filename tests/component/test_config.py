"""The component's DWBASE_* variables and the service behind the WIT, on CPython."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from dwbase.component.config import VARIABLES, ComponentConfig
from dwbase.component.service import Service, ToolFailure, failure
from dwbase.errors import InvalidInputError


def test_defaults_are_the_documented_safe_ones() -> None:
    cfg = ComponentConfig.from_env({})
    assert cfg.enforce_tenant_namespace is True
    assert cfg.max_payload_bytes == 65536 and cfg.importance_cap == 0.7
    assert cfg.allowed_kinds == ("observation", "reflection")
    assert cfg.allowed_labels is None and cfg.allow_policy_labels is False
    assert (cfg.health_disk_warn_pct, cfg.health_disk_degraded_pct) == (80.0, 90.0)
    assert cfg.observe_queue_capacity == 10000
    assert ComponentConfig() == cfg
    assert set(VARIABLES) == {f"DWBASE_{f.upper()}" for f in ComponentConfig.__slots__}


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
    ],
)
def test_booleans_are_parsed_as_booleans(raw: str, value: bool) -> None:
    cfg = ComponentConfig.from_env({"DWBASE_ENFORCE_TENANT_NAMESPACE": raw})
    assert cfg.enforce_tenant_namespace is value


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("DWBASE_ENFORCE_TENANT_NAMESPACE", "maybe"),
        ("DWBASE_IMPORTANCE_CAP", "1.5"),
        ("DWBASE_MAX_PAYLOAD_BYTES", "big"),
        ("DWBASE_TENANT_ID", "a/b"),
        ("DWBASE_OBSERVE_DROP_POLICY", "drop_all"),
        ("DWBASE_HEALTH_DISK_DEGRADED_PCT", "50"),
    ],
)
def test_a_bad_variable_is_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(InvalidInputError, match=name):
        ComponentConfig.from_env({name: raw})


def test_lists_and_an_empty_allowed_labels_list(tmp_path: Path) -> None:
    cfg = ComponentConfig.from_env(
        {"DWBASE_ALLOW_READ_PREFIXES": " a: , b: ,", "DWBASE_ALLOWED_LABELS": ""}
    )
    assert cfg.allow_read_prefixes == ("a:", "b:")
    assert cfg.allowed_labels == ()  # set but empty: no label allowed


def test_any_exception_becomes_a_stable_code() -> None:
    assert failure(RuntimeError("boom")).code == "internal_error"
    assert failure(OSError(28, "No space left on device")).code == "storage_error"
    assert failure(InvalidInputError("bad")).code == "invalid_input"
    assert ToolFailure("made_up", "x").code == "internal_error"
    assert json.loads(ToolFailure("invalid_input", "x", {"n": 1}).to_plain()["details_json"]) == {
        "n": 1
    }


def test_the_service_stores_in_a_log_under_the_data_dir(tmp_path: Path) -> None:
    svc = Service({"DWBASE_DATA_DIR": str(tmp_path), "DWBASE_TENANT_ID": "t"})
    new = {
        "world": "tenant:t/w",
        "worker": "",
        "kind": "observation",
        "timestamp": "",
        "importance": 0.5,
        "payload_json": '{"text": "hi"}',
        "vector": None,
        "flags": [],
        "labels": [],
        "links": [],
    }
    aid = svc.v2(svc.remember, new)
    assert svc.v1(svc.remember, "", {**new, "world": "w"}) == ""
    svc.close()
    again = Service({"DWBASE_DATA_DIR": str(tmp_path), "DWBASE_TENANT_ID": "t"})
    assert [a["id"] for a in again.v2(again.replay, "tenant:t/w", {})] == [aid]
    assert (tmp_path / "atoms.log").exists()
    again.close()


def test_a_remember_past_the_disk_budget_evicts_the_least_valuable_atoms(tmp_path: Path) -> None:
    svc = Service(
        {"DWBASE_DATA_DIR": str(tmp_path), "DWBASE_TENANT_ID": "t", "DWBASE_MAX_DISK_MB": "0.2"}
    )
    big = "y" * 5000
    for i in range(80):  # about 0.45 MB of atoms against a 0.2 MB budget
        svc.v2(
            svc.remember,
            {
                "world": "tenant:t/w",
                "worker": "",
                "kind": "observation",
                "timestamp": "",
                "importance": 0.1 if i < 40 else 0.6,
                "payload_json": json.dumps({"text": f"{i} {big}"}),
                "vector": None,
                "flags": [],
                "labels": [],
                "links": [],
            },
        )
    kept = svc.v2(svc.replay, "tenant:t/w", {})
    assert 0 < len(kept) < 80
    assert svc.engine.storage.used_bytes() <= 0.2 * 1024 * 1024
    assert all(a["importance"] == 0.6 for a in kept)  # the low-importance ones went first
    assert (tmp_path / "atoms.log").stat().st_size < 3 * 0.2 * 1024 * 1024 + (1 << 20)
    svc.close()


def _note(i: int, size: int = 10) -> dict[str, object]:
    return {
        "world": "tenant:t/w",
        "worker": "",
        "kind": "observation",
        "timestamp": "",
        "importance": 0.5,
        "payload_json": json.dumps({"text": f"{i} " + "z" * size}),
        "vector": None,
        "flags": [],
        "labels": [],
        "links": [],
    }


def test_health_judges_the_store_against_the_disk_budget_with_the_set_thresholds(
    tmp_path: Path,
) -> None:
    # Pressure is the higher of the filesystem's and the budget's percentages: set the
    # thresholds above what this machine's filesystem already uses, so the budget decides.
    du = shutil.disk_usage(tmp_path)
    fs_pct = 100 * du.used / (du.used + du.free)  # as health computes it (df's Use%)
    if fs_pct > 80:
        pytest.fail(f"the filesystem of {tmp_path} is {fs_pct:.0f}% used; this test needs < 80%")
    warn, degraded = math.ceil(fs_pct) + 2, math.ceil(fs_pct) + 12
    env = {
        "DWBASE_DATA_DIR": str(tmp_path),
        "DWBASE_TENANT_ID": "t",
        "DWBASE_MAX_DISK_MB": "0.1",
        "DWBASE_HEALTH_DISK_WARN_PCT": str(warn),
        "DWBASE_HEALTH_DISK_DEGRADED_PCT": str(degraded),
    }
    svc = Service(env)
    try:
        budget = int(0.1 * 1024 * 1024)
        health = svc.v2(svc.health)
        assert health["disk_pressure"] == "ok" and health["disk_budget_bytes"] == budget
        i = 0
        while svc.v2(svc.health)["store_bytes"] < budget * warn / 100:
            assert svc.v2(svc.health)["disk_pressure"] == "ok"
            svc.v2(svc.remember, _note(i, 2000))
            i += 1
        health = svc.v2(svc.health)
        if health["store_bytes"] < budget * degraded / 100:
            assert health["disk_pressure"] == "warn" and health["status"] == "ready"
        while svc.v2(svc.health)["store_bytes"] < budget * degraded / 100:
            svc.v2(svc.remember, _note(i, 2000))
            i += 1
        health = svc.v2(svc.health)
        assert health["disk_pressure"] == "degraded" and health["status"] == "degraded"
    finally:
        svc.close()


def test_drop_newest_keeps_the_first_atoms_of_a_full_observe_queue(tmp_path: Path) -> None:
    svc = Service(
        {
            "DWBASE_DATA_DIR": str(tmp_path),
            "DWBASE_TENANT_ID": "t",
            "DWBASE_OBSERVE_QUEUE_CAPACITY": "2",
            "DWBASE_OBSERVE_DROP_POLICY": "drop_newest",
        }
    )
    handle = svc.v2(svc.observe_start, {"world": "tenant:t/w"})
    ids = [svc.v2(svc.remember, _note(i)) for i in range(3)]
    assert [a["id"] for a in svc.v2(svc.observe_poll, handle, 10)] == ids[:2]
    assert svc.v2(svc.observe_stats, handle)["dropped_count"] == 1
    svc.close()

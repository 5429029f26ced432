"""Operator commands: world, quarantine, storage, gc, index, token, observe."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import Result

import dwbase
from dwbase.security.tokens import TokenStore

from .conftest import Run, assert_error, ids, ok_json, remember


def test_world_lifecycle_changes_listing_and_writes(dw: Run) -> None:
    made = ok_json(dw("world", "create", "incident:42", "--description", "outage", "--json"))
    assert made["status"] == "active"
    remember(dw, "-w", "incident:42", "--text", "db down")
    assert ok_json(dw("world", "archive", "incident:42", "--json"))["status"] == "archived"
    assert ok_json(dw("list-worlds", "--json")) == []
    assert ok_json(dw("list-worlds", "--json", "--include-archived")) == ["incident:42"]
    assert_error(dw("remember", "-w", "incident:42", "--text", "late"), "conflict", 1, "archived")
    assert ok_json(dw("world", "resume", "incident:42", "--json"))["status"] == "active"
    assert ok_json(dw("list-worlds", "--json")) == ["incident:42"]
    remember(dw, "-w", "incident:42", "--text", "back")
    assert_error(dw("world", "archive", "never-made"), "not_found", 1, "never-made")


def test_world_policy_drives_gc(dw: Run, data_dir: Path) -> None:
    old = remember(dw, "-w", "demo", "--text", "ancient", "--timestamp", "2020-01-01T00:00:00Z")
    fresh = remember(dw, "-w", "demo", "--text", "fresh")
    ok_json(dw("world", "policy", "demo", "--retention-days", "30", "--json"))
    with dwbase.open(data_dir) as db:
        assert db.policy("demo").retention_days == 30
    report = ok_json(dw("gc", "--json"))
    assert report["evicted"] == 1 and report["by_world"] == {"demo": 1}
    left = ids(ok_json(dw("replay", "-w", "demo", "--json")))
    assert old not in left and fresh in left
    assert_error(dw("world", "policy", "demo"), "invalid_input", 2, "policy")
    assert_error(
        dw("world", "policy", "demo", "--min-importance", "3"), "invalid_input", 2, "min_importance"
    )


def held_json(result: Result) -> Any:
    assert result.exit_code == 3, (result.stdout, result.stderr)  # held in quarantine
    return json.loads(result.stdout)


def test_quarantine_list_release_and_drop(dw: Run) -> None:
    held = held_json(dw("remember", "-w", "demo", "--payload", '{"v": NaN}', "--json"))
    assert held["quarantined"]
    other = held_json(dw("remember", "-w", "demo", "--payload", '{"w": Infinity}', "--json"))
    listed = ok_json(dw("quarantine", "list", "--world", "demo", "--json"))
    assert ids(listed) == [held["id"], other["id"]]
    assert all(a["world"] == "quarantine:demo" and "suspect" in a["flags"] for a in listed)
    assert ids(ok_json(dw("replay", "-w", "demo", "--json"))) == []

    ok_json(dw("quarantine", "release", held["id"], "--json"))
    assert ids(ok_json(dw("replay", "-w", "demo", "--json"))) == [held["id"]]
    ok_json(dw("quarantine", "drop", other["id"], "--json"))
    assert ok_json(dw("quarantine", "list", "--json")) == []
    assert_error(dw("quarantine", "drop", other["id"]), "not_found", 1)


def test_storage_check_is_clean_then_reports_a_tampered_record(dw: Run, data_dir: Path) -> None:
    aid = remember(dw, "-w", "demo", "--text", "original")
    remember(dw, "-w", "demo", "--text", "second")
    report = ok_json(dw("storage", "check", "--json"))
    assert report == {"ok": True, "records": 2, "worlds": 1, "problems": [], "erased": 0}
    assert ok_json(dw("storage", "reindex", "--json")) == {"reindexed": 2}
    compacted = ok_json(dw("storage", "compact", "--json"))
    assert compacted["file_bytes"] > 0

    conn = sqlite3.connect(data_dir / "dwbase.sqlite3")
    conn.execute('UPDATE atoms SET payload_json=\'{"text":"forged"}\' WHERE id=?', (aid,))
    conn.commit()
    conn.close()
    result = dw("storage", "check", "--json")
    assert result.exit_code == 1
    assert "error[storage_error]" in result.stderr
    report = json.loads(result.stdout)
    assert not report["ok"] and any(aid in p for p in report["problems"])


def test_storage_commands_need_a_local_store(cli: Run) -> None:
    assert_error(
        cli("--api", "http://127.0.0.1:9", "storage", "check"), "invalid_input", 2, "--data-dir"
    )


def test_index_status_and_rebuild(dw: Run) -> None:
    remember(dw, "-w", "demo", "--text", "vectors please")
    rebuilt = ok_json(dw("index", "rebuild", "--json"))
    assert rebuilt == {"worlds": ["demo"], "vectors": 1}
    status = ok_json(dw("index", "status", "--world", "demo", "--json"))
    assert [s["world"] for s in status] == ["demo"]
    assert status[0]["ready"] is True and status[0]["dim"] > 0
    assert "embedder" in status[0] and "lag" in status[0]


def test_token_create_list_revoke(dw: Run, data_dir: Path) -> None:
    made = ok_json(
        dw(
            "token",
            "create",
            "agent-1",
            "--read",
            "demo*",
            "--write",
            "demo",
            "--kind",
            "observation",
            "--importance-cap",
            "0.7",
            "--json",
        )
    )
    secret = made["token"]
    assert secret.startswith("dwb_") and made["worker"] == "agent-1"
    store = TokenStore.for_data_dir(str(data_dir))
    caller = store.authenticate(secret).caller()
    assert caller.can_read("demo-2") and not caller.can_write("demo-2")
    listed = ok_json(dw("token", "list", "--json"))
    assert [t["id"] for t in listed] == [made["id"]]
    assert "token" not in listed[0] and "secret_sha256" not in listed[0]
    assert secret not in dw("token", "list").stdout
    ok_json(dw("token", "revoke", made["id"], "--json"))
    assert ok_json(dw("token", "list", "--json")) == []
    assert len(ok_json(dw("token", "list", "--include-revoked", "--json"))) == 1
    assert_error(dw("token", "revoke", "nope"), "not_found", 1)
    assert_error(dw("token", "create", "a", "--kind", "dream"), "invalid_input", 2, "dream")


def test_token_create_grants_operator_policy_and_manage_scopes(dw: Run, data_dir: Path) -> None:
    store = TokenStore.for_data_dir(str(data_dir))
    ops = ok_json(
        dw("token", "create", "ops", "--read", "*", "--write", "", "--operate", "*", "--json")
    )
    caller = store.authenticate(ops["token"]).caller()
    assert caller.can_operate("secret") and not caller.can_write("demo")
    assert not caller.can_set_policy("demo") and not caller.can_manage("demo")
    admin = ok_json(dw("token", "create", "a", "--read", "demo", "--admin", "--json"))
    assert (admin["operate"], admin["policy"], admin["manage"]) == (["demo"], ["demo"], ["demo"])
    plain = ok_json(dw("token", "create", "p", "--read", "demo", "--policy", "demo", "--json"))
    assert (plain["operate"], plain["policy"], plain["manage"]) == ([], ["demo"], [])
    assert "operate" in dw("token", "list").stdout


def test_token_commands_refuse_to_overwrite_a_corrupt_token_file(dw: Run, data_dir: Path) -> None:
    ok_json(dw("token", "create", "agent-1", "--json"))
    (data_dir / "tokens.json").write_text("{broken")
    assert_error(dw("token", "create", "agent-2"), "unavailable", 1, "tokens.json")
    assert (data_dir / "tokens.json").read_text() == "{broken"


def test_observe_resumes_from_a_cursor_and_stops_after_count(dw: Run) -> None:
    first = remember(dw, "-w", "demo", "--text", "one")
    second = remember(dw, "-w", "demo", "--text", "two")
    third = remember(dw, "-w", "demo", "--text", "three", "--kind", "action")
    result = dw("observe", "-w", "demo", "--after", first, "--count", "2", "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["id"] for a in lines] == [second, third]
    result = dw("observe", "-w", "demo", "--after", first, "--kind", "action", "--timeout", "0.3")
    assert result.exit_code == 0 and third in result.stdout and second not in result.stdout

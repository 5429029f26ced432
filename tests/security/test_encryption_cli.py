"""The CLI of an encrypted store: status, rotate-key, erase, and a missing key's error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dwbase
from dwbase.cli import app

from .scan import K1, K2


def _run(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *args], prog_name="dwbase")
    return result.exit_code, result.stdout, result.stderr


def test_rotate_key_and_erase_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DWBASE_DATA_DIR", "DWBASE_API", "DWBASE_KEY_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DWBASE_KEY_K1", K1)
    store = tmp_path / "s"
    monkeypatch.setenv("DWBASE_STORAGE_ENCRYPTION_KEY", "k1")
    code, _, stderr = _run(store, "remember", "-w", "p", "--text", "tea", "--label", "subject:u-1")
    assert code == 0, stderr
    with dwbase.open(tmp_path / "plain") as db:
        db.remember("p", "w", "observation", {"text": "plain"})
    code, _, stderr = _run(tmp_path / "plain", "replay", "-w", "p")
    assert code == 1 and "is not encrypted" in stderr
    monkeypatch.delenv("DWBASE_STORAGE_ENCRYPTION_KEY")  # not needed to open an encrypted store
    with dwbase.open(store) as db:
        assert db.encryption_status() is not None
        db.remember("p", "w", "observation", {"text": "coffee"})
    code, stdout, _ = _run(store, "storage", "encryption", "--json")
    assert code == 0 and json.loads(stdout)["key_id"] == "k1"

    code, _, stderr = _run(store, "storage", "rotate-key", "--to", "k2")
    assert code == 1 and "error[encryption_key]" in stderr and "DWBASE_KEY_K2" in stderr
    monkeypatch.setenv("DWBASE_KEY_K2", K2)
    code, stdout, _ = _run(store, "storage", "rotate-key", "--to", "k2", "--json")
    assert code == 0, stdout
    rotated = json.loads(stdout)
    assert (rotated["key_id"], rotated["retired_keys"], rotated["atoms"]) == ("k2", ["k1"], 2)
    assert rotated["subject_keys_rewrapped"] == 1

    monkeypatch.delenv("DWBASE_KEY_K1")  # the old key is no longer needed
    code, stdout, _ = _run(store, "erase", "--subject", "u-1", "--json")
    assert code == 0 and json.loads(stdout) == {
        "subject": "u-1",
        "keys_destroyed": 1,
        "atoms": 1,
        "not_erasable": 0,
    }
    code, stdout, _ = _run(store, "storage", "check", "--json")
    report = json.loads(stdout)
    assert code == 0 and report["ok"] and report["erased"] == 1 and report["records"] == 2
    code, stdout, _ = _run(store, "replay", "-w", "p", "--json")
    assert code == 0 and [a["payload"] for a in json.loads(stdout)] == [{"text": "coffee"}]

    monkeypatch.delenv("DWBASE_KEY_K2")
    code, _, stderr = _run(store, "replay", "-w", "p")
    assert code == 1 and "error[encryption_key]" in stderr and "DWBASE_KEY_K2" in stderr


def test_erase_a_whole_world_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DWBASE_DATA_DIR", "DWBASE_API", "DWBASE_KEY_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DWBASE_KEY_K1", K1)
    store = tmp_path / "s"
    with dwbase.open(store, encryption_key="k1"):
        pass
    code, stdout, _ = _run(store, "storage", "encryption", "--erasable-world", "t:*", "--json")
    assert code == 0 and json.loads(stdout)["erasable_worlds"] == ["t:*"]
    code, _, stderr = _run(store, "remember", "-w", "t:1", "--text", "gone soon")
    assert code == 0, stderr
    code, _, stderr = _run(store, "erase")
    assert code == 2 and "give --subject S or --world WORLD" in stderr
    code, stdout, _ = _run(store, "erase", "--world", "t:1")
    assert code == 0 and "1 atom(s) can no longer be read" in stdout
    code, stdout, _ = _run(store, "replay", "-w", "t:1", "--json")
    assert code == 0 and json.loads(stdout) == []

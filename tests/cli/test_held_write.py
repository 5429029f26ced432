"""`dwbase remember` never reports a held (quarantined) write as a normal success."""

from __future__ import annotations

import json
from pathlib import Path

from dwbase.config import load_settings
from dwbase.node import start_background

from .conftest import Run, ok_json


def test_a_held_write_prints_where_it_went_and_exits_3(dw: Run) -> None:
    result = dw("remember", "-w", "ml", "--payload", '{"loss": NaN}')
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "remembered" not in result.stdout
    assert "held" in result.stdout and "quarantine:ml" in result.stdout
    assert "impossible_number" in result.stdout
    assert "quarantine release" in result.stdout  # says what to do about it


def test_a_held_write_in_json_says_so_and_exits_3(dw: Run) -> None:
    result = dw("remember", "-w", "ml", "--payload", '{"loss": NaN}', "--json")
    assert result.exit_code == 3, (result.stdout, result.stderr)
    body = json.loads(result.stdout)
    assert body == {
        "id": body["id"],
        "world": "ml",
        "quarantined": "impossible_number",
        "held": True,
        "held_world": "quarantine:ml",
    }


def test_prose_about_nan_is_a_normal_write(dw: Run) -> None:
    result = dw("remember", "-w", "ml", "--text", "loss became NaN at step 1200")
    assert result.exit_code == 0 and "remembered" in result.stdout
    body = ok_json(dw("remember", "-w", "ml", "--text", "accuracy went to inf", "--json"))
    assert body["held"] is False and body["quarantined"] is None


def test_a_held_write_through_a_node_exits_3_too(cli: Run, tmp_path: Path) -> None:
    settings = load_settings(
        None, {"data_dir": str(tmp_path / "node"), "listen": "127.0.0.1:0"}, environ={}
    )
    with start_background(settings) as node:
        result = cli("--api", node.url, "remember", "-w", "ml", "--payload", '{"v": Infinity}')
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "quarantine:ml" in result.stdout

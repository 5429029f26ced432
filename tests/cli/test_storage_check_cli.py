"""``dwbase storage check`` runs the full check by default; ``--quick`` keeps SQLite's quick one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .conftest import Run, assert_error, ok_json, remember


def test_storage_check_finds_a_text_index_edit_in_full_and_quick_mode(
    dw: Run, data_dir: Path
) -> None:
    remember(dw, "-w", "demo", "--text", "checkout latency 820ms", "--label", "latency")
    remember(dw, "-w", "demo", "--text", "fixed")
    assert ok_json(dw("storage", "check", "--json"))["ok"]
    assert ok_json(dw("storage", "check", "--quick", "--json"))["ok"]

    conn = sqlite3.connect(data_dir / "dwbase.sqlite3")
    with conn:
        conn.execute("UPDATE fts SET text='forged' WHERE rowid=(SELECT min(seq) FROM atoms)")
    conn.close()
    for args in ((), ("--quick",)):
        result = dw("storage", "check", *args)
        assert_error(result, "storage_error", 1, "problem")
        assert "text index row differs" in result.stdout
    assert ok_json(dw("storage", "reindex", "--json")) == {"reindexed": 2}
    assert ok_json(dw("storage", "check", "--json"))["problems"] == []

"""The LoCoMo harness (benchmarks/locomo.py) on a tiny conversation of the same shape."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import locomo

SAMPLE: dict[str, Any] = {
    "sample_id": "tiny-1",
    "conversation": {
        "speaker_a": "Ann",
        "speaker_b": "Bob",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a puppy called Rex!"},
            {"speaker": "Bob", "dia_id": "D1:2", "text": "Congrats! What breed is he?"},
            {"speaker": "Ann", "dia_id": "D1:3", "text": "A beagle.", "blip_caption": "a dog"},
        ],
        "session_2_date_time": "10:00 am on 20 June, 2023",
        "session_2": [
            {"speaker": "Bob", "dia_id": "D2:1", "text": "I started learning the piano."},
            {"speaker": "Ann", "dia_id": "D2:2", "text": "How are the lessons going?"},
        ],
        "session_3_date_time": "9:00 am on 1 July, 2023",
    },
    "qa": [
        {
            "question": "What is the name of Ann's puppy?",
            "answer": "Rex",
            "evidence": ["D1:1"],
            "category": 4,
        },
        {
            "question": "When did Bob start piano?",
            "answer": "June 2023",
            "evidence": ["D2:1; D9:9"],
            "category": 2,
        },
        {"question": "What breed?", "adversarial_answer": "x", "evidence": ["D7:1"], "category": 5},
    ],
}


def test_session_dates_parse_to_utc() -> None:
    assert locomo.parse_session_date("1:56 pm on 8 May, 2023").isoformat() == (
        "2023-05-08T13:56:00+00:00"
    )


def test_one_message_atom_per_turn_with_session_time_and_payload() -> None:
    atoms = locomo.turn_atoms("locomo:tiny-1", SAMPLE["conversation"])
    assert [a["payload"]["dia_id"] for a in atoms] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"]
    assert atoms[0]["kind"] == "message" and atoms[0]["timestamp"] == "2023-05-08T13:56:00Z"
    assert atoms[2]["payload"] == {
        "text": "A beagle.",
        "speaker": "Ann",
        "image_caption": "a dog",
        "dia_id": "D1:3",
    }
    assert atoms[3]["timestamp"] == "2023-06-20T10:00:00Z"


def test_malformed_evidence_is_split_and_unknown_ids_dropped() -> None:
    known = {"D2:1", "D1:1"}
    assert locomo.evidence_ids(["D2:1; D9:9"], known) == ["D2:1"]
    assert locomo.evidence_ids(["D1:1,D2:1"], known) == ["D1:1", "D2:1"]
    assert locomo.evidence_ids(["D7:1"], known) == []


def test_recall_at_k_counts_the_share_of_evidence_retrieved() -> None:
    assert locomo.recall(["a", "b"], ["x", "a", "y"], 2) == 0.5
    assert locomo.recall(["a"], ["x", "y", "a"], 2) == 0.0


def test_main_prints_recall_and_writes_the_json_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps([SAMPLE]))
    out = tmp_path / "out.json"
    assert locomo.main(["--data", str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("overall_1_5", "overall_1_4"):
        assert set(result[key]) == {"recall@5", "recall@10", "recall@20"}
    assert set(result["by_category"]) == {"2", "4"}  # the category-5 question had no evidence
    assert result["by_category"]["4"]["recall@5"] == 1.0
    assert result["by_category"]["2"]["recall@5"] == 1.0
    printed = capsys.readouterr().out
    assert "overall 1-5" in printed and "R@10" in printed


def test_split_dev_keeps_the_five_development_conversations_of_locomo10(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # locomo10.json holds all ten conversations; --split picks the documented halves.
    dev = {**SAMPLE, "sample_id": "conv-26"}
    held_out = {**SAMPLE, "sample_id": "conv-44"}
    data = tmp_path / "locomo10.json"
    data.write_text(json.dumps([dev, held_out]))
    assert locomo.select(json.loads(data.read_text()), "dev") == [dev]
    assert locomo.select(json.loads(data.read_text()), "held-out") == [held_out]
    assert locomo.main(["--data", str(data), "--split", "dev"]) == 0
    assert "1 conversation" in capsys.readouterr().out


def _second_conversation() -> dict[str, Any]:
    other: dict[str, Any] = json.loads(json.dumps(SAMPLE))
    other["sample_id"] = "tiny-2"
    other["conversation"]["session_1"][0]["text"] = "My puppy Rex chewed the piano lessons book."
    return other


def test_store_per_world_gives_each_conversation_a_store_and_keeps_every_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps([SAMPLE, _second_conversation()]))
    runs: dict[str, Any] = {}
    for name, extra in (("shared", []), ("own", ["--store-per-world"])):
        out = tmp_path / f"{name}.json"
        assert locomo.main(["--data", str(data), "--json", str(out), *extra]) == 0
        runs[name] = json.loads(out.read_text())
    capsys.readouterr()
    assert runs["shared"]["store_per_world"] is False and runs["own"]["store_per_world"] is True
    answers = runs["own"]["answers"]
    assert [(a["world"], a["qa"]) for a in answers] == [
        ("locomo:tiny-1", 0),
        ("locomo:tiny-1", 1),
        ("locomo:tiny-2", 0),
        ("locomo:tiny-2", 1),
    ]
    assert answers[0]["hits"][0] == "D1:1"  # Rex's turn answers "the name of Ann's puppy"
    # A world is ranked as it would be alone (item 2's per-world lexical index).
    assert runs["shared"]["answers"] == answers


def test_world_index_max_zero_searches_every_world_in_the_store_wide_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dwbase.storage.sqlite import SQLiteStorage

    monkeypatch.setattr(SQLiteStorage, "WORLD_INDEX_MAX", SQLiteStorage.WORLD_INDEX_MAX)
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps([SAMPLE, _second_conversation()]))
    assert locomo.main(["--data", str(data), "--world-index-max", "0"]) == 0
    assert SQLiteStorage.WORLD_INDEX_MAX == 0
    assert "overall 1-5" in capsys.readouterr().out

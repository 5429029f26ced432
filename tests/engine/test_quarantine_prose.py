"""Quarantine holds impossible numbers, not prose about them; a held write says so."""

from __future__ import annotations

import math
from typing import Any

import pytest

import dwbase
from dwbase import AtomId


@pytest.mark.parametrize(
    "text",
    [
        "loss became NaN at step 1200",
        "accuracy went to inf",
        "Infinity Ward shipped",
        "latency: nan",
        "value -inf",
        "NaN",
    ],
)
def test_prose_naming_nan_or_inf_is_stored_in_its_world(db: dwbase.Engine, text: str) -> None:
    aid = db.remember("ml", "trainer", "observation", {"text": text})
    assert aid.quarantined is None and not aid.held
    assert [a.id for a in db.replay("ml")] == [aid]
    assert db.ask("ml", text).hits[0].atom.id == aid


def test_a_string_value_nan_is_text_not_a_number(db: dwbase.Engine) -> None:
    aid = db.remember("ml", "trainer", "observation", {"loss": "NaN", "acc": ["inf", "-Infinity"]})
    assert not aid.held and db.get(aid).world == "ml"


@pytest.mark.parametrize(
    "form",
    [
        {"payload_json": '{"loss": NaN}'},
        {"payload_json": '{"acc": Infinity}'},
        {"payload_json": '{"deep": {"list": [1, 2, -Infinity]}}'},
        {"payload_json": '{"huge": 1e999}'},
        {"payload": {"loss": math.nan}},
        {"payload": {"nested": [{"x": -math.inf}]}},
    ],
)
def test_non_finite_numbers_in_the_payload_are_held(
    db: dwbase.Engine, form: dict[str, Any]
) -> None:
    aid = db.remember("ml", "trainer", "observation", **form)
    assert aid.held and aid.quarantined == aid.held_reason == "impossible_number"
    assert aid.held_world == "quarantine:ml"
    assert db.replay("ml") == []
    assert [a.id for a in db.replay("quarantine:ml")] == [aid]


def test_a_held_id_says_so_and_a_stored_id_reads_as_a_plain_string(db: dwbase.Engine) -> None:
    held = db.remember("ml", "trainer", payload_json='{"loss": NaN}')
    ok = db.remember("ml", "trainer", payload={"loss": 0.5})
    assert isinstance(held, AtomId) and isinstance(held, str)
    assert "held" in repr(held) and "quarantine:ml" in repr(held) and str(held) in repr(held)
    assert "impossible_number" in repr(held)
    assert repr(ok) == repr(str(ok))
    assert not ok.held and ok.held_reason is None and ok.held_world is None
    # remember_batch answers each atom for itself.
    ids = db.remember_batch(
        [
            {"world": "ml", "worker": "t", "payload_json": '{"v": Infinity}'},
            {"world": "ml", "worker": "t", "payload": {"text": "went to inf"}},
        ]
    )
    assert [i.held for i in ids] == [True, False]
    assert ids[0].held_world == "quarantine:ml"

"""The storage contract: one suite, run against every adapter of the Storage port.

Each test takes ``store`` (a fresh store of one adapter) and ``rec`` (a record builder); the
``adapter`` fixture in ``conftest.py`` runs it once per adapter (SQLite in ``tmp_path``,
in-memory). A new adapter joins the suite by joining that fixture.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from dwbase.errors import StorageError
from dwbase.model import FilterSpec, Link, StoredAtom
from dwbase.storage import NewRecord, Storage
from dwbase.vector import pack
from dwbase.vector.exact import pack_unit

from .conftest import BASE_US, HOUR_US, Adapter, RecordMaker

OPEN = FilterSpec()


def ids(rows: list[StoredAtom]) -> list[str]:
    return [s.atom.id for s in rows]


def add(store: Storage, *records: NewRecord) -> list[StoredAtom]:
    return store.append(list(records))


# ------------------------------------------------------------------------------------ append


def test_append_returns_stored_records_with_increasing_seqs(
    store: Storage, rec: RecordMaker
) -> None:
    records = [rec(), rec(world="other"), rec()]
    stored = store.append(records)
    assert [s.atom for s in stored] == [r.atom for r in records]
    seqs = [s.seq for s in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] >= 1
    assert store.max_seq() == seqs[-1]
    assert store.count() == 3
    assert stored[0].ts_us == records[0].ts_us and stored[0].text == records[0].text


def test_append_of_an_empty_batch_stores_nothing(store: Storage) -> None:
    assert store.append([]) == []
    assert store.count() == 0 and store.max_seq() == 0


def test_append_is_idempotent_on_ids(store: Storage, rec: RecordMaker) -> None:
    first = rec("w", "original text", atom_id="dup")
    add(store, first)
    again = rec("w", "other text", atom_id="dup")
    assert add(store, again) == []
    assert store.count() == 1
    got = store.get("dup")
    assert got is not None and got.atom == first.atom and got.text == "original text"


def test_append_skips_a_repeated_id_inside_one_batch(store: Storage, rec: RecordMaker) -> None:
    a = rec(atom_id="x", text="first")
    b = rec(atom_id="x", text="second")
    c = rec(atom_id="y")
    stored = store.append([a, b, c])
    assert ids(stored) == ["x", "y"]
    got = store.get("x")
    assert got is not None and got.text == "first"
    assert store.count() == 2


def test_append_never_reuses_the_id_of_a_deleted_atom(store: Storage, rec: RecordMaker) -> None:
    (s,) = add(store, rec(atom_id="gone"))
    assert store.delete([s.seq]) == 1
    assert add(store, rec(atom_id="gone")) == []
    assert store.get("gone") is None and store.count() == 0


def test_append_is_all_or_nothing(store: Storage, rec: RecordMaker) -> None:
    add(store, rec(atom_id="before"))
    good1 = rec(atom_id="good-1")
    bad = rec(atom_id="bad", worker="bad\ud800worker")  # cannot be encoded: unstorable
    good2 = rec(atom_id="good-2")
    max_before = store.max_seq()
    with pytest.raises(StorageError):
        store.append([good1, bad, good2])
    assert store.count() == 1
    assert store.get("good-1") is None and store.get("good-2") is None
    assert [q for q, _ in store.search_text("w", ["hello"], 10)] == [max_before]
    assert store.check().ok
    # The store is still usable and its hash chain continues from the last stored atom.
    stored = store.append([good1, good2])
    assert ids(stored) == ["good-1", "good-2"]
    report = store.check()
    assert report.ok, report.problems
    assert report.records == 3


# ---------------------------------------------------------------------------------- get


def test_get_returns_the_stored_atom_or_none(store: Storage, rec: RecordMaker) -> None:
    r = rec(
        labels=["a", "b"],
        flags=["f"],
        links=[Link("t1", "supersedes"), Link("t2")],
        vector=[0.5, -1.25, 3.0],
        importance=0.75,
    )
    (s,) = add(store, r)
    got = store.get(r.atom.id)
    assert got == s
    assert got.atom == r.atom and got.atom.payload_json == r.atom.payload_json
    assert store.get("missing") is None


def test_get_many_returns_only_present_ids(store: Storage, rec: RecordMaker) -> None:
    a, b = rec(), rec()
    add(store, a, b)
    got = store.get_many([a.atom.id, "missing", b.atom.id, a.atom.id])
    assert set(got) == {a.atom.id, b.atom.id}
    assert got[b.atom.id].atom == b.atom
    assert store.get_many([]) == {}


def test_get_seqs_returns_only_present_seqs(store: Storage, rec: RecordMaker) -> None:
    stored = add(store, rec(), rec(), rec())
    got = store.get_seqs([stored[2].seq, 999_999, stored[0].seq])
    assert set(got) == {stored[0].seq, stored[2].seq}
    assert got[stored[2].seq].atom == stored[2].atom


# ---------------------------------------------------------------------------------- scan


def test_scan_returns_only_the_world_asked(store: Storage, rec: RecordMaker) -> None:
    add(store, rec("w"), rec("w2"), rec("w"), rec("w:sub"))
    assert [s.atom.world for s in store.scan("w", OPEN)] == ["w", "w"]
    assert store.scan("nowhere", OPEN) == []


def test_scan_filters_by_kind(store: Storage, rec: RecordMaker) -> None:
    add(store, rec(kind="observation"), rec(kind="plan"), rec(kind="action"), rec(kind="plan"))
    rows = store.scan("w", FilterSpec(kinds=frozenset({"plan", "action"})))
    assert [s.atom.kind for s in rows] == ["plan", "action", "plan"]


def test_scan_requires_every_label_and_flag(store: Storage, rec: RecordMaker) -> None:
    a = rec(labels=["x", "y"], flags=["f1"])
    b = rec(labels=["x"], flags=["f1", "f2"])
    c = rec(labels=["y", "x", "z"], flags=[])
    add(store, a, b, c)
    assert ids(store.scan("w", FilterSpec(labels=frozenset({"x"})))) == [
        a.atom.id,
        b.atom.id,
        c.atom.id,
    ]
    assert ids(store.scan("w", FilterSpec(labels=frozenset({"x", "y"})))) == [
        a.atom.id,
        c.atom.id,
    ]
    assert ids(store.scan("w", FilterSpec(flags=frozenset({"f1"})))) == [a.atom.id, b.atom.id]
    assert ids(store.scan("w", FilterSpec(flags=frozenset({"f1", "f2"})))) == [b.atom.id]
    both = FilterSpec(labels=frozenset({"x", "y"}), flags=frozenset({"f1"}))
    assert ids(store.scan("w", both)) == [a.atom.id]
    # A label is not a flag and a flag is not a label.
    assert store.scan("w", FilterSpec(labels=frozenset({"f1"}))) == []
    assert store.scan("w", FilterSpec(flags=frozenset({"x"}))) == []


def test_scan_since_and_until_are_inclusive(store: Storage, rec: RecordMaker) -> None:
    recs = [rec(ts_us=BASE_US + i * HOUR_US) for i in range(5)]
    add(store, *recs)
    spec = FilterSpec(since_us=BASE_US + HOUR_US, until_us=BASE_US + 3 * HOUR_US)
    assert ids(store.scan("w", spec)) == [r.atom.id for r in recs[1:4]]
    assert ids(store.scan("w", FilterSpec(since_us=BASE_US + 4 * HOUR_US))) == [recs[4].atom.id]
    assert ids(store.scan("w", FilterSpec(until_us=BASE_US))) == [recs[0].atom.id]
    assert store.scan("w", FilterSpec(since_us=BASE_US + 4 * HOUR_US + 1)) == []


def test_scan_as_of_sees_only_atoms_recorded_by_then(store: Storage, rec: RecordMaker) -> None:
    recs = [rec(rec_us=BASE_US + i) for i in range(4)]
    add(store, *recs)
    assert ids(store.scan("w", FilterSpec(as_of_us=BASE_US + 1))) == [
        recs[0].atom.id,
        recs[1].atom.id,
    ]
    assert store.scan("w", FilterSpec(as_of_us=BASE_US - 1)) == []


def test_scan_after_seq_resumes_after_a_cursor(store: Storage, rec: RecordMaker) -> None:
    stored = add(store, rec(), rec(), rec(), rec())
    assert ids(store.scan("w", OPEN, after_seq=stored[1].seq)) == ids(stored[2:])
    assert store.scan("w", OPEN, after_seq=stored[3].seq) == []


def test_scan_orders_by_append_or_by_event_time(store: Storage, rec: RecordMaker) -> None:
    # Event times out of append order, with a tie between the 2nd and 4th atom.
    times = [5, 2, 9, 2, 0]
    recs = [rec(ts_us=BASE_US + t * HOUR_US) for t in times]
    stored = add(store, *recs)
    append_ids = ids(stored)
    by_event = [s.atom.id for s in sorted(stored, key=lambda s: (s.ts_us, s.seq))]
    assert by_event != append_ids
    assert ids(store.scan("w", OPEN)) == append_ids
    assert ids(store.scan("w", OPEN, order="event")) == by_event
    assert ids(store.scan("w", OPEN, descending=True)) == append_ids[::-1]
    assert ids(store.scan("w", OPEN, order="event", descending=True)) == by_event[::-1]
    assert ids(store.scan("w", OPEN, limit=2)) == append_ids[:2]
    assert ids(store.scan("w", OPEN, order="event", limit=3)) == by_event[:3]
    assert ids(store.scan("w", OPEN, descending=True, limit=2)) == append_ids[::-1][:2]
    assert store.scan("w", OPEN, limit=0) == []


def test_scan_combines_filter_cursor_order_and_limit(store: Storage, rec: RecordMaker) -> None:
    recs = [
        rec(kind="plan" if i % 2 else "observation", ts_us=BASE_US + (10 - i) * HOUR_US)
        for i in range(10)
    ]
    stored = add(store, *recs)
    spec = FilterSpec(kinds=frozenset({"plan"}), since_us=BASE_US + 2 * HOUR_US)
    rows = store.scan("w", spec, after_seq=stored[2].seq, order="event", limit=2)
    expected = sorted(
        (s for s in stored[3:] if s.atom.kind == "plan" and s.ts_us >= BASE_US + 2 * HOUR_US),
        key=lambda s: (s.ts_us, s.seq),
    )[:2]
    assert ids(rows) == ids(expected) and len(rows) == 2


def test_scan_keeps_quarantined_atoms_apart(store: Storage, rec: RecordMaker) -> None:
    a = rec()
    q = rec(quarantine="burst")
    add(store, a, q)
    assert ids(store.scan("w", OPEN)) == [a.atom.id]
    held = store.scan("w", OPEN, quarantined=True)
    assert ids(held) == [q.atom.id] and held[0].quarantine == "burst"


# ---------------------------------------------------------------------------- search_text


def test_search_text_finds_atoms_containing_any_word(store: Storage, rec: RecordMaker) -> None:
    a = rec(text="checkout latency was 820ms")
    b = rec(text="the database disk is full")
    c = rec(text="cats and dogs")
    add(store, a, b, c)
    by_seq = {s.seq: s.atom.id for s in store.scan("w", OPEN)}
    hits = store.search_text("w", ["latency"], 10)
    assert [by_seq[q] for q, _ in hits] == [a.atom.id]
    found = {by_seq[q] for q, _ in store.search_text("w", ["latency", "disk"], 10)}
    assert found == {a.atom.id, b.atom.id}
    assert store.search_text("w", ["unicorn"], 10) == []
    assert store.search_text("w", [], 10) == []
    assert all(score > 0 for _, score in store.search_text("w", ["cats"], 10))


def test_search_text_ignores_case_and_diacritics_and_query_syntax(
    store: Storage, rec: RecordMaker
) -> None:
    (cafe, _) = add(store, rec(text="Café crème and NEAR things"), rec(text="plain words"))
    for terms in (["café"], ["CAFE"], ["creme"], ["and"], ["NOT", "OR", "NEAR"]):
        assert [q for q, _ in store.search_text("w", terms, 10)] == [cafe.seq], terms
    # FTS operators and quotes are words to look for, never query syntax (and never errors).
    assert store.search_text("w", ['x"y', "*", "(", "-", "a:b", "^"], 10) == []


def test_search_text_ranks_the_better_match_first(store: Storage, rec: RecordMaker) -> None:
    weak = rec(text="disk alpha beta gamma delta epsilon zeta eta theta")
    strong = rec(text="disk disk disk")
    add(store, weak, strong, rec(text="nothing here"), rec(text="more filler words"))
    by_seq = {s.seq: s.atom.id for s in store.scan("w", OPEN)}
    hits = store.search_text("w", ["disk"], 10)
    assert [by_seq[q] for q, _ in hits] == [strong.atom.id, weak.atom.id]
    assert hits[0][1] > hits[1][1]
    assert len(store.search_text("w", ["disk"], 1)) == 1


def test_search_text_respects_world_spec_and_quarantine(store: Storage, rec: RecordMaker) -> None:
    plain = rec(text="disk full", kind="observation")
    plan = rec(text="disk cleanup", kind="plan", labels=["ops"])
    held = rec(text="disk spam", quarantine="burst")
    elsewhere = rec("w2", text="disk elsewhere")
    stored = add(store, plain, plan, held, elsewhere)
    seq = {s.atom.id: s.seq for s in stored}
    assert {q for q, _ in store.search_text("w", ["disk"], 10)} == {
        seq[plain.atom.id],
        seq[plan.atom.id],
    }
    only_plans = FilterSpec(kinds=frozenset({"plan"}))
    assert [q for q, _ in store.search_text("w", ["disk"], 10, spec=only_plans)] == [
        seq[plan.atom.id]
    ]
    labelled = FilterSpec(labels=frozenset({"ops"}))
    assert [q for q, _ in store.search_text("w", ["disk"], 10, spec=labelled)] == [
        seq[plan.atom.id]
    ]
    late = FilterSpec(since_us=plan.ts_us)
    assert seq[plain.atom.id] not in {q for q, _ in store.search_text("w", ["disk"], 10, spec=late)}
    assert [q for q, _ in store.search_text("w", ["disk"], 10, quarantined=True)] == [
        seq[held.atom.id]
    ]
    assert [q for q, _ in store.search_text("w2", ["disk"], 10)] == [seq[elsewhere.atom.id]]


def test_search_text_in_a_world_ranks_as_if_the_world_were_alone(
    store: Storage, rec: RecordMaker
) -> None:
    texts = [
        "disk full on the database host",
        "disk cleanup plan for the host",
        "the cache is warm",
        "disk disk quota reached",
        "nothing relevant here",
    ]
    small = [s.seq for s in add(store, *(rec("small", t) for t in texts))]
    questions = [["disk"], ["disk", "cache"], ["quota", "host", "the"], ["warm"]]
    alone = [store.search_text("small", q, 10) for q in questions]
    assert alone[0] and all(q in small for q, _ in alone[0])
    # Another world full of the same words changes neither the hits nor their scores.
    add(store, *(rec("big", f"disk {i} the cache of the disk host") for i in range(60)))
    assert [store.search_text("small", q, 10) for q in questions] == alone
    # The world's own changes show at once.
    (late,) = add(store, rec("small", "warm disk"))
    assert late.seq in {q for q, _ in store.search_text("small", ["warm"], 10)}
    assert store.delete([late.seq]) == 1
    assert store.search_text("small", ["warm"], 10) == alone[3]


# --------------------------------------------------------------------------- load_vectors


def test_load_vectors_returns_index_vectors_in_seq_order(store: Storage, rec: RecordMaker) -> None:
    a = rec(vector=[1.0, 0.0])
    b = rec(vector=None)
    c = rec(vector=[0.25, -0.5])
    held = rec(vector=[0.0, 1.0], quarantine="burst")
    other = rec("w2", vector=[1.0, 1.0])
    stored = add(store, a, b, c, held, other)
    seq = {s.atom.id: s.seq for s in stored}
    assert store.load_vectors("w") == [
        (seq[a.atom.id], pack([1.0, 0.0])),
        (seq[c.atom.id], pack_unit([0.25, -0.5])),
    ]
    assert store.load_vectors("w", after_seq=seq[a.atom.id]) == [
        (seq[c.atom.id], pack_unit([0.25, -0.5]))
    ]
    assert store.load_vectors("w", quarantined=True) == [(seq[held.atom.id], pack([0.0, 1.0]))]
    assert store.load_vectors("w2") == [(seq[other.atom.id], pack_unit([1.0, 1.0]))]


# ---------------------------------------------------------------------------- link_counts


def test_link_counts_counts_sources_per_kind(store: Storage, rec: RecordMaker) -> None:
    add(
        store,
        rec(atom_id="t1"),
        rec(links=[Link("t1", "confirms")]),
        rec(links=[Link("t1", "confirms"), Link("t2", "supersedes")]),
        rec("w2", links=[Link("t1", "contradicts")]),
        rec(links=[Link("t1", "references")]),
    )
    counts = store.link_counts(["t1", "t2", "t3"])
    assert counts == {
        "t1": {"confirms": 2, "contradicts": 1, "references": 1},
        "t2": {"supersedes": 1},
    }
    assert store.link_counts([]) == {}


def test_link_counts_as_of_ignores_later_links(store: Storage, rec: RecordMaker) -> None:
    add(
        store,
        rec(links=[Link("t", "confirms")], rec_us=BASE_US + 10),
        rec(links=[Link("t", "confirms")], rec_us=BASE_US + 20),
        rec(links=[Link("t", "supersedes")], rec_us=BASE_US + 30),
    )
    assert store.link_counts(["t"], as_of_us=BASE_US + 20) == {"t": {"confirms": 2}}
    assert store.link_counts(["t"], as_of_us=BASE_US + 9) == {}
    assert store.link_counts(["t"]) == {"t": {"confirms": 2, "supersedes": 1}}


def test_link_counts_ignore_quarantined_and_deleted_sources(
    store: Storage, rec: RecordMaker
) -> None:
    _, held, doomed = add(
        store,
        rec(links=[Link("t", "confirms")]),
        rec(links=[Link("t", "confirms")], quarantine="low_trust"),
        rec(links=[Link("t", "contradicts")]),
    )
    assert store.link_counts(["t"]) == {"t": {"confirms": 1, "contradicts": 1}}
    store.delete([doomed.seq])
    assert store.link_counts(["t"]) == {"t": {"confirms": 1}}
    store.set_quarantine(held.seq, None)
    assert store.link_counts(["t"]) == {"t": {"confirms": 2}}


# ------------------------------------------------------------------- labels, worlds, count


def test_with_label_prefix_returns_matching_atoms_in_seq_order(
    store: Storage, rec: RecordMaker
) -> None:
    p1 = rec("w", labels=["policy:retention_days=3"])
    other = rec("w2", labels=["x", "policy:min_importance=0.2"])
    plain = rec("w", labels=["policyish", "notpolicy:x"])
    held = rec("w", labels=["policy:retention_days=1"], quarantine="burst")
    p2 = rec("w", labels=["policy:replication_deny=x*"])
    add(store, p1, other, plain, held, p2)
    assert ids(store.with_label_prefix("policy:")) == [p1.atom.id, other.atom.id, p2.atom.id]
    assert ids(store.with_label_prefix("policy:", world="w")) == [p1.atom.id, p2.atom.id]
    assert ids(store.with_label_prefix("policy:retention")) == [p1.atom.id]
    assert store.with_label_prefix("world_status:") == []


def test_worlds_lists_every_world_holding_atoms(store: Storage, rec: RecordMaker) -> None:
    assert store.worlds() == []
    stored = add(
        store, rec("b"), rec("a"), rec("tenant:acme/support"), rec("b"), rec("held", quarantine="x")
    )
    assert store.worlds() == ["a", "b", "held", "tenant:acme/support"]
    store.delete([stored[1].seq])
    assert store.worlds() == ["b", "held", "tenant:acme/support"]


def test_count_by_world_and_quarantine(store: Storage, rec: RecordMaker) -> None:
    add(store, rec("a"), rec("a"), rec("a", quarantine="burst"), rec("b"))
    assert store.count() == 4
    assert store.count("a") == 3
    assert store.count("a", quarantined=True) == 1
    assert store.count("a", quarantined=False) == 2
    assert store.count(quarantined=True) == 1
    assert store.count("nowhere") == 0


# ----------------------------------------------------------------------------- quarantine


def test_quarantine_can_be_set_listed_and_cleared(store: Storage, rec: RecordMaker) -> None:
    a, b, c = add(store, rec("w"), rec("w"), rec("w2", quarantine="impossible_number"))
    store.set_quarantine(a.seq, "burst")
    assert ids(store.scan("w", OPEN)) == [b.atom.id]
    assert ids(store.quarantined()) == [a.atom.id, c.atom.id]
    assert ids(store.quarantined("w")) == [a.atom.id]
    assert ids(store.quarantined(limit=1)) == [a.atom.id]
    got = store.get(a.atom.id)
    assert got is not None and got.quarantine == "burst"
    assert got.visible_atom().world == "quarantine:w" and "suspect" in got.visible_atom().flags
    store.set_quarantine(a.seq, None)
    assert ids(store.scan("w", OPEN)) == [a.atom.id, b.atom.id]
    released = store.get(a.atom.id)
    assert released is not None and released.quarantine is None and released.atom == a.atom
    assert store.count(quarantined=True) == 1
    assert store.check().ok  # quarantine state is not part of the record


def test_set_quarantine_of_an_unknown_seq_changes_nothing(store: Storage, rec: RecordMaker) -> None:
    (s,) = add(store, rec())
    store.set_quarantine(s.seq + 1000, "burst")
    assert store.count(quarantined=True) == 0 and ids(store.scan("w", OPEN)) == [s.atom.id]


# ------------------------------------------------------------------------------------- gc


def test_gc_candidates_select_old_or_unimportant_atoms(store: Storage, rec: RecordMaker) -> None:
    old = rec(ts_us=BASE_US, importance=0.9)
    low = rec(ts_us=BASE_US + 100 * HOUR_US, importance=0.1)
    keep = rec(ts_us=BASE_US + 100 * HOUR_US, importance=0.9)
    other_world = rec("w2", ts_us=BASE_US, importance=0.0)
    seq = {s.atom.id: s.seq for s in add(store, old, low, keep, other_world)}
    cutoff = BASE_US + 50 * HOUR_US
    assert store.gc_candidates("w", older_than_us=cutoff, below_importance=None, limit=10) == [
        seq[old.atom.id]
    ]
    assert store.gc_candidates("w", older_than_us=None, below_importance=0.5, limit=10) == [
        seq[low.atom.id]
    ]
    assert store.gc_candidates("w", older_than_us=cutoff, below_importance=0.5, limit=10) == [
        seq[old.atom.id],
        seq[low.atom.id],
    ]
    assert store.gc_candidates("w", older_than_us=cutoff, below_importance=0.5, limit=1) == [
        seq[old.atom.id]
    ]
    assert store.gc_candidates("w", older_than_us=None, below_importance=None, limit=10) == []
    # Importance exactly at the threshold stays.
    assert store.gc_candidates("w", older_than_us=None, below_importance=0.1, limit=10) == []


PROTECTED_LABELS = [
    ["policy:retention_days=1"],
    ["world_meta", "world_status:archived"],
    ["world_meta"],
    ["world_metadata"],  # the reserved names are prefixes (storage.base.PROTECTED_LABEL_PREFIXES)
    ["world_status:active"],
    ["x", "policy:min_importance=0.5"],
]


@pytest.mark.parametrize("labels", PROTECTED_LABELS)
def test_gc_candidates_never_return_protected_atoms(
    store: Storage, rec: RecordMaker, labels: list[str]
) -> None:
    (s,) = add(store, rec(ts_us=BASE_US, importance=0.0, labels=labels))
    assert store.gc_candidates("w", older_than_us=BASE_US + 1, below_importance=1.0, limit=10) == []
    assert store.lowest_value(10) == []
    assert store.get_seqs([s.seq])  # still there


def test_gc_candidates_never_return_link_targets(store: Storage, rec: RecordMaker) -> None:
    target = rec(ts_us=BASE_US, importance=0.0, atom_id="target")
    also_target = rec(ts_us=BASE_US, importance=0.0, atom_id="quarantine-linked")
    loose = rec(ts_us=BASE_US, importance=0.0)
    linker = rec(importance=1.0, links=[Link("target", "references")])
    held_linker = rec("w2", links=[Link("quarantine-linked", "confirms")], quarantine="burst")
    seq = {s.atom.id: s.seq for s in add(store, target, also_target, loose, linker, held_linker)}
    assert store.gc_candidates("w", older_than_us=BASE_US + 1, below_importance=0.5, limit=10) == [
        seq[loose.atom.id]
    ]
    assert seq[target.atom.id] not in store.lowest_value(100)
    assert seq[also_target.atom.id] not in store.lowest_value(100)


def test_lowest_value_orders_by_importance_then_age(store: Storage, rec: RecordMaker) -> None:
    stored = add(
        store,
        rec(importance=0.5),
        rec("w2", importance=0.1),
        rec(importance=0.1),
        rec(importance=0.9),
        rec(importance=0.0, labels=["policy:retention_days=3"]),
    )
    assert store.lowest_value(10) == [stored[1].seq, stored[2].seq, stored[0].seq, stored[3].seq]
    assert store.lowest_value(2) == [stored[1].seq, stored[2].seq]


# --------------------------------------------------------------------------------- delete


def test_delete_removes_an_atom_from_every_index(store: Storage, rec: RecordMaker) -> None:
    keep = rec(text="disk full", labels=["policy:retention_days=9"], vector=[1.0, 0.0])
    doomed = rec(
        text="disk gone",
        labels=["policy:min_importance=0.1", "tag"],
        flags=["f"],
        links=[Link(keep.atom.id, "confirms")],
        vector=[0.0, 1.0],
        importance=0.0,
    )
    stored = add(store, keep, doomed)
    seq = stored[1].seq
    assert store.delete([seq]) == 1
    assert store.get(doomed.atom.id) is None
    assert store.get_many([doomed.atom.id]) == {}
    assert store.get_seqs([seq]) == {}
    assert ids(store.scan("w", OPEN)) == [keep.atom.id]
    assert store.scan("w", FilterSpec(labels=frozenset({"tag"}))) == []
    assert store.scan("w", FilterSpec(flags=frozenset({"f"}))) == []
    assert [q for q, _ in store.search_text("w", ["disk"], 10)] == [stored[0].seq]
    assert store.search_text("w", ["gone"], 10) == []
    assert store.load_vectors("w") == [(stored[0].seq, pack([1.0, 0.0]))]
    assert store.link_counts([keep.atom.id]) == {}
    assert ids(store.with_label_prefix("policy:")) == [keep.atom.id]
    assert store.count() == 1 and store.count("w") == 1
    assert seq not in store.lowest_value(10)
    assert store.delete([seq]) == 0
    assert store.delete([]) == 0


def test_known_ids_are_every_id_a_world_stored_deleted_and_quarantined_ones_too(
    store: Storage, rec: RecordMaker
) -> None:
    stored = add(
        store,
        rec(atom_id="c"),
        rec(atom_id="a", quarantine="burst"),
        rec("v", atom_id="b"),
        rec(atom_id="d"),
        rec(atom_id="e"),
    )
    assert store.known_ids("w") == ["a", "c", "d", "e"]
    assert store.delete([stored[3].seq]) == 1
    assert ids(store.scan("w", OPEN)) == ["c", "e"]
    assert store.known_ids("w") == ["a", "c", "d", "e"]  # sorted, the deleted one kept
    assert store.known_ids("v") == ["b"] and store.known_ids("none") == []


def test_delete_keeps_check_clean_and_the_chain_continuing(
    store: Storage, rec: RecordMaker
) -> None:
    stored = add(store, *(rec("w" if i % 3 else "v") for i in range(9)))
    top = store.max_seq()
    assert store.delete([stored[0].seq, stored[4].seq, stored[8].seq]) == 3
    report = store.check()
    assert report.ok, report.problems
    assert report.records == 6 and report.worlds == 2
    # New atoms chain on from the deleted head; seqs never go back.
    more = add(store, rec("w"), rec("v"))
    assert min(s.seq for s in more) > top
    report = store.check()
    assert report.ok, report.problems
    assert report.records == 8


def test_delete_of_a_whole_world_keeps_check_clean(store: Storage, rec: RecordMaker) -> None:
    stored = add(store, rec("gone"), rec("gone"), rec("kept"))
    store.delete([stored[0].seq, stored[1].seq])
    assert store.worlds() == ["kept"]
    assert store.check().ok
    add(store, rec("gone"))
    assert store.check().ok


# ---------------------------------------------------------------------------- meta, check


def test_meta_get_and_set(store: Storage) -> None:
    assert store.meta_get("embedder") is None
    store.meta_set("embedder", "hashing:1:256")
    assert store.meta_get("embedder") == "hashing:1:256"
    store.meta_set("embedder", "other:2:384")
    assert store.meta_get("embedder") == "other:2:384"
    store.meta_set("dim:w", "3")
    assert store.meta_get("dim:w") == "3" and store.meta_get("embedder") == "other:2:384"


def test_check_reports_records_and_worlds(store: Storage, rec: RecordMaker) -> None:
    report = store.check()
    assert report.ok and report.records == 0 and report.problems == []
    add(store, rec("a"), rec("b"), rec("a", quarantine="burst"))
    report = store.check()
    assert report.ok, report.problems
    assert report.records == 3 and report.worlds == 2


def test_check_detects_a_tampered_record(
    adapter: Adapter, store: Storage, rec: RecordMaker
) -> None:
    stored = add(store, rec(), rec(atom_id="victim"), rec())
    assert store.check().ok
    adapter.tamper(store, stored[1].seq)
    report = store.check()
    assert not report.ok
    assert any("victim" in p and "checksum" in p for p in report.problems), report.problems


def test_reindex_rebuilds_indexes_and_keeps_results(store: Storage, rec: RecordMaker) -> None:
    stored = add(
        store,
        rec(text="disk full", labels=["l1"], flags=["f1"], links=[Link("t", "confirms")]),
        rec(text="cpu hot", labels=["policy:retention_days=2"]),
        rec(text="disk again", quarantine="burst"),
    )
    before = (
        [q for q, _ in store.search_text("w", ["disk"], 10)],
        ids(store.scan("w", FilterSpec(labels=frozenset({"l1"}), flags=frozenset({"f1"})))),
        store.link_counts(["t"]),
        ids(store.with_label_prefix("policy:")),
    )
    store.delete([stored[1].seq])
    assert store.reindex() == store.count() == 2
    after = (
        [q for q, _ in store.search_text("w", ["disk"], 10)],
        ids(store.scan("w", FilterSpec(labels=frozenset({"l1"}), flags=frozenset({"f1"})))),
        store.link_counts(["t"]),
        ids(store.with_label_prefix("policy:")),
    )
    assert after[0] == before[0] and after[1] == before[1] and after[2] == before[2]
    assert after[3] == []
    assert store.check().ok


# --------------------------------------------------------------------------------- close


CALLS: dict[str, Callable[[Storage], Any]] = {
    "append": lambda s: s.append([RecordMaker()()]),
    "get": lambda s: s.get("x"),
    "get_many": lambda s: s.get_many(["x"]),
    "get_seqs": lambda s: s.get_seqs([1]),
    "scan": lambda s: s.scan("w", OPEN),
    "search_text": lambda s: s.search_text("w", ["hello"], 10),
    "load_vectors": lambda s: s.load_vectors("w"),
    "link_counts": lambda s: s.link_counts(["x"]),
    "with_label_prefix": lambda s: s.with_label_prefix("policy:"),
    "worlds": lambda s: s.worlds(),
    "count": lambda s: s.count(),
    "quarantined": lambda s: s.quarantined(),
    "set_quarantine": lambda s: s.set_quarantine(1, None),
    "gc_candidates": lambda s: s.gc_candidates(
        "w", older_than_us=BASE_US, below_importance=None, limit=1
    ),
    "lowest_value": lambda s: s.lowest_value(1),
    "delete": lambda s: s.delete([1]),
    "max_seq": lambda s: s.max_seq(),
    "meta_get": lambda s: s.meta_get("k"),
    "meta_set": lambda s: s.meta_set("k", "v"),
    "used_bytes": lambda s: s.used_bytes(),
    "check": lambda s: s.check(),
    "reindex": lambda s: s.reindex(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_closed_store_raises_storage_error(adapter: Adapter, rec: RecordMaker, call: str) -> None:
    store = adapter.open()
    add(store, rec())
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StorageError):
        CALLS[call](store)


def test_used_bytes_grows_with_data(store: Storage, rec: RecordMaker) -> None:
    start = store.used_bytes()
    assert start >= 0
    add(store, *(rec(text="x" * 2000) for _ in range(50)))
    assert store.used_bytes() > start


# ---------------------------------------------------------------------- SQLite persistence


def _snapshot(store: Storage) -> dict[str, Any]:
    return {
        "worlds": store.worlds(),
        "count": store.count(),
        "quarantined": store.count(quarantined=True),
        "max_seq": store.max_seq(),
        "scan": {w: store.scan(w, OPEN) for w in store.worlds()},
        "held": {w: store.scan(w, OPEN, quarantined=True) for w in store.worlds()},
        "event": {w: ids(store.scan(w, OPEN, order="event")) for w in store.worlds()},
        "search": store.search_text("w", ["disk"], 10),
        "vectors": store.load_vectors("w"),
        "links": store.link_counts(["t", "atom-00001"]),
        "policy": store.with_label_prefix("policy:"),
        "meta": store.meta_get("embedder"),
        "gc": store.gc_candidates("w", older_than_us=BASE_US * 2, below_importance=1.0, limit=99),
        "lowest": store.lowest_value(99),
        "known": store.known_ids("w"),
    }


def test_reopening_a_persistent_store_keeps_everything(
    persistent_adapter: Adapter, rec: RecordMaker
) -> None:
    adapter = persistent_adapter
    store = adapter.open()
    stored = add(
        store,
        rec(text="disk full", vector=[1.0, 2.0], labels=["policy:retention_days=3"]),
        rec(text="disk slow", links=[Link("t", "supersedes"), Link("atom-00001", "confirms")]),
        rec("w2", text="elsewhere", flags=["f"], importance=0.0),
        rec(text="disk spam", quarantine="burst", vector=[0.0, 1.0]),
        rec(text="doomed", importance=0.1),
    )
    store.delete([stored[4].seq])
    store.meta_set("embedder", "hashing:1:256")
    before = _snapshot(store)
    report_before = store.check()
    assert report_before.ok, report_before.problems
    store.close()

    reopened = adapter.open()
    try:
        assert _snapshot(reopened) == before
        assert reopened.check() == report_before
        # Appending after a reopen continues the hash chain and the seqs.
        more = add(reopened, rec(), rec("w2"), rec(atom_id=stored[4].atom.id))
        assert [s.seq for s in more] == [before["max_seq"] + 1, before["max_seq"] + 2]
        report = reopened.check()
        assert report.ok, report.problems
        assert report.records == 6
    finally:
        reopened.close()


def _sqlite_exec(path: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def test_sqlite_check_detects_a_record_removed_behind_its_back(
    sqlite_adapter: Adapter, rec: RecordMaker
) -> None:
    adapter = sqlite_adapter
    assert adapter.path is not None
    store = adapter.open()
    try:
        stored = add(store, rec(), rec(), rec(), rec("w2"))
        _sqlite_exec(adapter.path, "DELETE FROM atoms WHERE seq=?", (stored[1].seq,))
        report = store.check()
        assert not report.ok
        assert any("hash chain of world 'w' breaks" in p for p in report.problems), report.problems
        assert not any("'w2'" in p for p in report.problems)
    finally:
        store.close()


def test_sqlite_check_reports_a_stale_text_index_that_reindex_repairs(
    sqlite_adapter: Adapter, rec: RecordMaker
) -> None:
    adapter = sqlite_adapter
    assert adapter.path is not None
    store = adapter.open()
    try:
        add(store, rec(text="disk full"), rec(text="disk slow"))
        _sqlite_exec(adapter.path, "DELETE FROM fts")
        assert store.search_text("w", ["disk"], 10) == []
        report = store.check()
        assert not report.ok and any("text index" in p for p in report.problems)
        assert store.reindex() == 2
        assert len(store.search_text("w", ["disk"], 10)) == 2
        assert store.check().ok
    finally:
        store.close()


def test_recent_seqs_are_the_newest_matching_atoms(store: Storage, rec: RecordMaker) -> None:
    stored = store.append([rec(kind="plan" if i % 2 else "observation") for i in range(6)])
    stored += store.append([rec("other")])
    plans = [s.seq for s in stored if s.atom.kind == "plan" and s.atom.world == "w"]
    assert store.recent_seqs("w", FilterSpec(kinds=frozenset({"plan"})), 2) == plans[::-1][:2]
    assert store.recent_seqs("w", FilterSpec(), 100, quarantined=True) == []


def test_score_rows_carry_the_scoring_columns_and_mark_system_atoms(
    store: Storage, rec: RecordMaker
) -> None:
    a, b, c = store.append(
        [
            rec(importance=0.25, worker="x"),
            rec(labels=["policy:retention_days=3"]),
            rec(labels=["world_meta", "world_status:active"]),
        ]
    )
    rows = store.score_rows([a.seq, b.seq, c.seq, 999_999])
    assert set(rows) == {a.seq, b.seq, c.seq}
    ra = rows[a.seq]
    assert (ra.id, ra.worker, ra.ts_us, ra.importance, ra.system) == (
        a.atom.id,
        "x",
        a.ts_us,
        0.25,
        False,
    )
    assert rows[b.seq].system and rows[c.seq].system


def test_filter_seqs_keeps_only_matching_atoms_of_the_world(
    store: Storage, rec: RecordMaker
) -> None:
    a, b, c, d = store.append(
        [rec(labels=["x"]), rec(), rec("other", labels=["x"]), rec(labels=["x"])]
    )
    store.set_quarantine(d.seq, "burst")
    spec = FilterSpec(labels=frozenset({"x"}))
    seqs = [a.seq, b.seq, c.seq, d.seq]
    assert store.filter_seqs("w", seqs, spec) == {a.seq}
    assert store.filter_seqs("w", seqs, spec, quarantined=True) == {d.seq}
    assert store.filter_seqs("w", seqs, FilterSpec()) == {a.seq, b.seq}


def test_sqlite_text_search_of_a_large_store_leaves_out_very_common_words(
    sqlite_adapter: Adapter, rec: RecordMaker
) -> None:
    store = sqlite_adapter.open()
    texts = ["routine upgrade note"] * 9_990 + ["routine upgrade of the rare zircon"] * 10
    store.append([rec(text=t) for t in texts])
    # "routine" and "upgrades" (stemmed like "upgrade") are in every atom: their BM25 weight
    # is near zero, so only the discriminating word is searched.
    hits = store.search_text("w", ["routine", "upgrades", "zircon"], 50)
    assert len(hits) == 10
    found = store.get_seqs([s for s, _ in hits])
    assert all("zircon" in s.text for s in found.values())
    # A question made only of words in most atoms has nothing to search lexically.
    assert store.search_text("w", ["routine", "upgrading"], 50) == []
    store.close()


def test_sqlite_text_search_of_a_small_store_keeps_every_word(
    sqlite_adapter: Adapter, rec: RecordMaker
) -> None:
    store = sqlite_adapter.open()
    store.append([rec(text="routine upgrade note") for _ in range(300)])
    assert len(store.search_text("w", ["routine", "zircon"], 500)) == 300
    store.close()

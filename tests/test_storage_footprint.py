"""The SQLite store's disk layout: an atom's text is kept once, vectors fill their pages, and
a store written by an earlier DWBase (schema 1) still opens, reads, searches and checks clean.

``storage/store_schema1.sqlite3.gz`` was written by DWBase at commit 520ca7d (schema 1: the
text index kept its own copy of every text, 4 KiB pages) with ``sample_store.build_sample_store``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import dwbase
from dwbase.embed import HashingEmbedder
from dwbase.model import Atom, FilterSpec, Link, payload_text
from dwbase.storage import NewRecord, SQLiteStorage
from dwbase.storage.base import record_checksum, vector_bytes
from dwbase.timeutil import format_instant
from dwbase.vector.exact import pack_unit
from sample_store import DIM, WORLDS, build_sample_store

SCHEMA1 = Path(__file__).parent / "storage" / "store_schema1.sqlite3.gz"


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def _record(n: int, payload_json: str, text: str, vector: bytes | None = None) -> NewRecord:
    atom = Atom(
        id=f"atom-{n:05d}",
        world="w",
        worker="a",
        kind="observation",
        timestamp=format_instant(US),
        importance=0.5,
        payload_json=payload_json,
        recorded_at=format_instant(US),
    )
    return NewRecord(atom, US, US, text, vector)


PAYLOADS = [
    '{"text":"the disk filled up overnight"}',  # as the engine writes a payload dict
    '{"text": "checkout latency 820ms"}',  # as json.dumps writes it (a client's payload_json)
    '{"text": "she said \\"the disk\\" again"}',  # escapes: the text is not a slice
    '{"title": "disk report", "n": 3}',  # any other shape: the text is made of its values
    '{"text": "disk"}\n',
    '{"text":"naïve disk 😀 ✓ after"}',  # characters beyond ASCII and the BMP: cut the same
]


def test_a_new_store_keeps_each_text_once_and_still_finds_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStorage(str(path))
    try:
        records = [
            _record(i, p, payload_text(json.loads(p))) for i, p in enumerate(PAYLOADS, start=1)
        ]
        stored = store.append(records)
        for rec, s in zip(records, stored, strict=True):
            got = store.get(rec.atom.id)
            assert got is not None and got.text == rec.text == s.text
            assert got.atom == rec.atom
        hits = {seq for seq, _ in store.search_text("w", ["disk"], 10)}
        assert hits == {s.seq for s in stored if "disk" in s.text}
        assert store.check().ok, store.check().problems
    finally:
        store.close()
    assert "fts_content" not in _tables(path)  # the text index keeps no copy of the texts
    conn = sqlite3.connect(path)
    try:
        kept = dict(conn.execute("SELECT id, text FROM atoms").fetchall())
    finally:
        conn.close()
    # A plain {"text": ...} payload holds the text as it is: it is not written a second time.
    assert kept["atom-00001"] is None and kept["atom-00002"] is None
    assert kept["atom-00003"] == 'she said "the disk" again'
    assert kept["atom-00004"] == "disk report 3"
    assert kept["atom-00005"] == "disk"  # not exactly the plain shape: kept
    assert kept["atom-00006"] is None


def test_a_small_world_is_indexed_on_its_own_from_the_atoms_texts(tmp_path: Path) -> None:
    """A small world's own index (in the reader's temp schema) is filled from ``atoms_text``:
    it ranks exactly as the store-wide index does when the world is alone in the store."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alone = SQLiteStorage(str(tmp_path / "a" / "s.sqlite3"))
    shared = SQLiteStorage(str(tmp_path / "b" / "s.sqlite3"))
    try:
        records = [
            _record(i, p, payload_text(json.loads(p))) for i, p in enumerate(PAYLOADS, start=1)
        ]
        alone.append(records)
        shared.append(records)
        other = _record(99, '{"text":"disk disk disk elsewhere"}', "disk disk disk elsewhere")
        shared.append([replace(other, atom=replace(other.atom, world="v"))])
        want = alone.search_text("w", ["disk", "latency"], 10)
        assert want and shared.search_text("w", ["disk", "latency"], 10) == want
    finally:
        alone.close()
        shared.close()


def test_a_new_store_fills_its_pages_with_vectors(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStorage(str(path))
    try:
        vec = pack_unit([1.0] * 256)
        store.append([_record(i, '{"text":"x"}', "x", vec) for i in range(1, 601)])
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (used,) = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name='vectors'").fetchone()
    finally:
        conn.close()
    assert page_size >= 16384
    # 1,024 bytes of float32 each; with 4 KiB pages only three fit a page (1,365 bytes each)
    assert used / 600 <= 1120, used / 600


def _schema1_store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "dwbase.sqlite3"
    path.write_bytes(gzip.decompress(SCHEMA1.read_bytes()))
    return path


def test_a_schema_1_store_opens_reads_searches_and_checks_clean(tmp_path: Path) -> None:
    path = _schema1_store(tmp_path)
    before = path.read_bytes()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT id, world, payload_json, text FROM atoms").fetchall()
    finally:
        conn.close()
    assert len(rows) > 90
    store = SQLiteStorage(str(path))
    try:
        assert store.check().ok, store.check().problems
        for aid, world, payload, text in rows:
            got = store.get(aid)
            assert got is not None and got.atom.world == world
            assert got.atom.payload_json == payload and got.text == text
        for world in WORLDS:  # each world searched in its own index (several worlds)
            found = {seq for seq, _ in store.search_text(world, ["latency"], 100)}
            want = {s.seq for s in store.scan(world, FilterSpec()) if "latency" in s.text}
            assert found == want and want
    finally:
        store.close()
    assert path.read_bytes() == before  # opening, reading and checking wrote nothing
    assert "tombstones_id" not in _tables(path)
    # The engine on it: asks find old atoms, new ones are written in the store's own layout.
    with dwbase.open(path.parent, embedder=HashingEmbedder(dim=DIM)) as db:
        old = db.ask("alpha", "disk latency", limit=5).hits
        assert old and all("latency" in h.atom.payload["text"] for h in old)
        aid = db.remember("alpha", "agent-9", "observation", {"text": "zeppelin disk latency"})
        assert db.ask("alpha", "zeppelin", limit=3).hits[0].atom.id == aid
        assert db.check().ok
    assert "tombstones_id" in _tables(path)  # made by the first append, in its transaction
    store = SQLiteStorage(str(path))
    try:
        victim = store.scan("alpha", FilterSpec(), limit=2)[1]
        assert store.delete([victim.seq]) == 1
        assert store.check().ok, store.check().problems
        assert store.reindex() == store.count()
        assert store.check().ok, store.check().problems
        assert store.search_text("alpha", ["zeppelin"], 3)
        assert store.meta_get("schema_version") == "1"
    finally:
        store.close()
    assert "fts_content" in _tables(path)


def test_compact_gives_a_schema_1_store_the_text_once_layout_and_answers_stay(
    tmp_path: Path,
) -> None:
    path = _schema1_store(tmp_path)
    size = path.stat().st_size
    store = SQLiteStorage(str(path))
    try:
        before = {w: store.scan(w, FilterSpec(), limit=1000) for w in WORLDS}
        held = store.quarantined()
        found = {w: store.search_text(w, ["disk", "latency", "3"], 50) for w in WORLDS}
        assert store.compact()["converted"] is True
        assert store.check().ok, store.check().problems
        assert {w: store.scan(w, FilterSpec(), limit=1000) for w in WORLDS} == before
        assert store.quarantined() == held
        assert {w: store.search_text(w, ["disk", "latency", "3"], 50) for w in WORLDS} == found
        assert store.compact()["converted"] is False  # once
        atom = store.append([_record(1, '{"text":"zeppelin over disk"}', "zeppelin over disk")])
        assert [s for s, _ in store.search_text("alpha", ["zeppelin"], 5)] == []
        assert [s for s, _ in store.search_text("w", ["zeppelin"], 5)] == [atom[0].seq]
        assert store.meta_get("schema_version") == "2"
        # the quarantine log's trigger came back with the table: a held atom is logged, once
        held_rec = store.append(
            [replace(_record(2, '{"text":"held"}', "held"), quarantine="burst")]
        )
        assert store.check().ok, store.check().problems
    finally:
        store.close()
    assert "fts_content" not in _tables(path)
    assert path.stat().st_size < size
    conn = sqlite3.connect(path)
    try:
        kept, plain = conn.execute(
            "SELECT count(text), count(*) FROM atoms WHERE payload_json LIKE '{\"text\":%'"
        ).fetchone()
    finally:
        conn.close()
    assert plain > 50 and kept == 0  # every {"text": ...} payload's text is stored once now
    assert _logged(path, held_rec[0].seq) == 1
    store = SQLiteStorage(str(path))
    try:
        assert store.check().ok  # and the converted store opens as schema 2
    finally:
        store.close()


def _logged(path: Path, seq: int) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(
            conn.execute("SELECT count(*) FROM quarantine_log WHERE seq=?", (seq,)).fetchone()[0]
        )
    finally:
        conn.close()


def test_a_new_store_made_by_the_sample_builder_checks_clean(tmp_path: Path) -> None:
    path = build_sample_store(tmp_path / "data")  # asserts a clean check itself
    assert "fts_content" not in _tables(path)


def test_a_new_store_logs_held_atoms_from_append_without_a_trigger(tmp_path: Path) -> None:
    """A trigger on the atoms table ran a program for every atom stored (about 13 µs each)
    to log the few that are held: a schema 2 store's append logs them itself."""
    path = tmp_path / "s.sqlite3"
    store = SQLiteStorage(str(path))
    try:
        held, free = store.append(
            [
                replace(_record(1, '{"text":"a"}', "a"), quarantine="burst"),
                _record(2, '{"text":"b"}', "b"),
            ]
        )
        assert store.check().ok, store.check().problems
        store.set_quarantine(held.seq, None)
        assert store.check().ok, store.check().problems
    finally:
        store.close()
    assert "quarantine_held" not in _tables(path)
    assert (_logged(path, held.seq), _logged(path, free.seq)) == (2, 0)


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    ident=_text,
    worker=_text,
    payload=st.dictionaries(_text, _text | st.integers() | st.floats(), max_size=3),
    importance=st.floats(0, 1) | st.sampled_from([0, 1]),
    labels=st.lists(_text, max_size=3),
    flags=st.lists(_text, max_size=2),
    links=st.lists(st.tuples(_text, st.sampled_from(["supersedes", "references"])), max_size=2),
    vector=st.none() | st.lists(st.floats(allow_nan=False), max_size=4),
)
def test_record_checksum_is_the_sha256_of_the_canonical_json(
    ident: str,
    worker: str,
    payload: dict[str, object],
    importance: float,
    labels: list[str],
    flags: list[str],
    links: list[tuple[str, str]],
    vector: list[float] | None,
) -> None:
    """The checksum every store and node compares: unchanged however it is computed."""
    atom = Atom(
        id=ident,
        world="w/ü",
        worker=worker,
        kind="observation",
        timestamp="2024-01-01T00:00:00Z",
        importance=importance,
        payload_json=json.dumps(payload, ensure_ascii=False),
        vector=tuple(vector) if vector is not None else None,
        flags=tuple(flags),
        labels=tuple(labels),
        links=tuple(Link(t, k) for t, k in links),
        recorded_at="2024-01-01T00:00:01Z",
    )
    fields = atom.to_dict()
    fields["vector"] = None
    body = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    h = hashlib.sha256(body.encode("utf-8"))
    if vector is not None:
        h.update(b"\x00" + vector_bytes(vector))
    assert record_checksum(atom) == h.digest()


def test_an_append_looks_its_ids_up_among_the_tombstones_by_index(tmp_path: Path) -> None:
    """Ids are never reused, so every append looks for its ids among deleted atoms' tombstones
    too: by an index, not by reading every tombstone (which made a remember in a store with
    many deleted atoms cost milliseconds)."""
    path = tmp_path / "s.sqlite3"
    store = SQLiteStorage(str(path))
    try:
        stored = store.append([_record(i, '{"text":"x"}', "x") for i in range(1, 6)])
        assert store.delete([s.seq for s in stored[:3]]) == 3
        assert store.append([_record(1, '{"text":"x"}', "x"), _record(9, '{"text":"y"}', "y")])
        assert store.count() == 3  # the deleted id stayed deleted, the new one was stored
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM tombstones WHERE id IN (?, ?)", ("a", "b")
            )
        )
    finally:
        conn.close()
    assert "USING COVERING INDEX tombstones_id" in plan, plan

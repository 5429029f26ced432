"""``storage check`` finds what broke: SQLite's full integrity check, and every index compared
with the atoms (text, tags, links, vectors, ``dim``), quarantine state and each world's head.

Each case edits a closed store behind DWBase's back (as a disk fault or a hand edit would),
then opens it and checks.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dwbase
from dwbase.embed import HashingEmbedder
from dwbase.model import FilterSpec, StoredAtom
from dwbase.storage.sqlite import SQLiteStorage
from dwbase.vector import pack
from sample_store import build_sample_store

Tamper = Callable[[sqlite3.Connection], object]  # what it returns is ignored


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_store(tmp_path_factory.mktemp("pristine") / "data")


@pytest.fixture
def store_file(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the sample store (a closed store: no WAL beside it)."""
    copy = tmp_path / "data" / pristine.name
    copy.parent.mkdir()
    copy.write_bytes(pristine.read_bytes())
    return copy


def _one(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def _with_vector(conn: sqlite3.Connection, caller: bool) -> int:
    cond = "a.vector IS NOT NULL" if caller else "a.vector IS NULL"
    return int(
        _one(
            conn,
            f"SELECT a.seq FROM atoms a JOIN vectors v ON v.seq=a.seq WHERE {cond} "
            "ORDER BY a.seq LIMIT 1 OFFSET 2",
        )
    )


def _newest(conn: sqlite3.Connection, world: str, n: int) -> list[int]:
    rows = conn.execute(
        "SELECT seq FROM atoms WHERE world=? ORDER BY seq DESC LIMIT ?", (world, n)
    ).fetchall()
    return [int(r[0]) for r in rows]


def _remove_cleanly(conn: sqlite3.Connection, seqs: list[int]) -> None:
    """Remove atoms and every index row of theirs, leaving a valid (shorter) chain."""
    marks = ",".join("?" * len(seqs))
    for sql in (
        f"DELETE FROM tags WHERE seq IN ({marks})",
        f"DELETE FROM links WHERE seq IN ({marks})",
        f"DELETE FROM vectors WHERE seq IN ({marks})",
        f"DELETE FROM fts WHERE rowid IN ({marks})",
        f"DELETE FROM atoms WHERE seq IN ({marks})",
    ):
        conn.execute(sql, seqs)


def _drop_newest(conn: sqlite3.Connection) -> None:
    _remove_cleanly(conn, _newest(conn, "alpha", 3))


def _drop_newest_and_fix_heads(conn: sqlite3.Connection) -> None:
    """As above, and rewrite the world's anchor to the new (valid) head: the counts differ."""
    _drop_newest(conn)
    seq, chain = conn.execute(
        "SELECT seq, chain FROM atoms WHERE world='alpha' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    conn.execute("UPDATE world_heads SET seq=?, chain=? WHERE world='alpha'", (seq, chain))


def _flip_fts_index(conn: sqlite3.Connection) -> None:
    block_id, block = conn.execute(
        "SELECT id, block FROM fts_data ORDER BY length(block) DESC LIMIT 1"
    ).fetchone()
    data = bytearray(block)
    data[len(data) // 2] ^= 0x5A
    conn.execute("UPDATE fts_data SET block=? WHERE id=?", (bytes(data), block_id))


def _release_behind_its_back(conn: sqlite3.Connection) -> None:
    seq = _one(conn, "SELECT seq FROM atoms WHERE quarantine IS NOT NULL LIMIT 1")
    conn.execute("UPDATE atoms SET quarantine=NULL WHERE seq=?", (seq,))


def _hold_behind_its_back(conn: sqlite3.Connection) -> None:
    seq = _one(conn, "SELECT seq FROM atoms WHERE quarantine IS NULL LIMIT 1 OFFSET 7")
    conn.execute("UPDATE atoms SET quarantine='burst' WHERE seq=?", (seq,))


def _move_text_row(conn: sqlite3.Connection) -> None:
    # The count of text rows stays right: one atom loses its row, a missing seq gains one.
    seq = _one(conn, "SELECT seq FROM atoms ORDER BY seq LIMIT 1 OFFSET 4")
    text = _one(conn, "SELECT text FROM fts WHERE rowid=?", (seq,))
    conn.execute("DELETE FROM fts WHERE rowid=?", (seq,))
    conn.execute("INSERT INTO fts(rowid, text) VALUES(999999, ?)", (text,))


def _swap_tag(conn: sqlite3.Connection) -> None:
    tag, seq = conn.execute(
        "SELECT tag, seq FROM tags WHERE tag LIKE 'l:topic:%' LIMIT 1"
    ).fetchone()
    conn.execute("UPDATE tags SET tag=? WHERE tag=? AND seq=?", ("l:topic:99", tag, seq))


def _vector_for_empty_text(conn: sqlite3.Connection) -> None:
    seq = _one(
        conn,
        "SELECT a.seq FROM atoms a WHERE a.text='' AND a.vector IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.seq=a.seq)",
    )
    conn.execute("INSERT INTO vectors(seq, data) VALUES(?, ?)", (seq, pack([0.5] * 8)))


TAMPERS: dict[str, tuple[Tamper, str]] = {
    "atom text edited": (
        lambda c: c.execute(
            "UPDATE atoms SET text='edited' WHERE seq=(SELECT min(seq) FROM atoms)"
        ),
        "text",
    ),
    "text index row edited": (
        lambda c: c.execute(
            "UPDATE fts SET text='edited' WHERE rowid=(SELECT max(seq) FROM atoms)"
        ),
        "text index",
    ),
    "text index row moved to another seq": (_move_text_row, "text index"),
    "text index structure damaged": (_flip_fts_index, "text index"),
    "tag row removed": (
        lambda c: c.execute(
            "DELETE FROM tags WHERE (tag, seq)=(SELECT tag, seq FROM tags ORDER BY seq LIMIT 1)"
        ),
        "tag",
    ),
    "tag row changed": (_swap_tag, "tag"),
    "link kind changed": (
        lambda c: c.execute(
            "UPDATE links SET kind=CASE kind WHEN 'confirms' THEN 'supersedes' ELSE 'confirms' END "
            "WHERE (target, seq)=(SELECT target, seq FROM links ORDER BY seq LIMIT 1)"
        ),
        "link",
    ),
    "link row added": (
        lambda c: c.execute(
            "INSERT INTO links(target, seq, kind) SELECT id, (SELECT max(seq) FROM atoms), "
            "'supersedes' FROM atoms ORDER BY seq LIMIT 1"
        ),
        "link",
    ),
    "caller vector edited": (
        lambda c: c.execute(
            "UPDATE vectors SET data=? WHERE seq=?",
            (pack([1.0] + [0.0] * 7), _with_vector(c, True)),
        ),
        "vector",
    ),
    "embedder vector removed": (
        lambda c: c.execute("DELETE FROM vectors WHERE seq=?", (_with_vector(c, False),)),
        "vector",
    ),
    "embedder vector cut short": (
        lambda c: c.execute(
            "UPDATE vectors SET data=substr(data, 1, 16) WHERE seq=?", (_with_vector(c, False),)
        ),
        "vector",
    ),
    "vector for an atom without text": (_vector_for_empty_text, "vector"),
    "vector row of no atom": (
        lambda c: c.execute("INSERT INTO vectors(seq, data) VALUES(999999, ?)", (pack([0.1] * 8),)),
        "vector",
    ),
    "dim metadata edited": (
        lambda c: c.execute("UPDATE meta SET value='16' WHERE key='dim:beta'"),
        "dim",
    ),
    "held atom released behind its back": (_release_behind_its_back, "quarantine"),
    "atom held behind its back": (_hold_behind_its_back, "quarantine"),
    "quarantine reason edited": (
        lambda c: c.execute(
            "UPDATE atoms SET quarantine='low_trust' WHERE seq=(SELECT max(seq) FROM atoms "
            "WHERE quarantine IS NOT NULL)"
        ),
        "quarantine",
    ),
    "newest atoms of a world removed": (_drop_newest, "alpha"),
    "newest atoms removed and the head rewritten": (_drop_newest_and_fix_heads, "alpha"),
    "world head removed": (
        lambda c: c.execute("DELETE FROM world_heads WHERE world='beta'"),
        "beta",
    ),
}


def _tamper(path: Path, tamper: Tamper) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            tamper(conn)
    finally:
        conn.close()


def _check(path: Path, *, quick: bool = False) -> list[str]:
    store = SQLiteStorage(str(path))
    try:
        report = store.check(quick=quick)
    finally:
        store.close()
    assert report.ok == (report.problems == [])
    return report.problems


def test_the_sample_store_checks_clean(store_file: Path) -> None:
    assert _check(store_file) == []
    assert _check(store_file, quick=True) == []


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_check_finds_an_index_or_anchor_that_disagrees_with_the_atoms(
    store_file: Path, case: str
) -> None:
    tamper, word = TAMPERS[case]
    _tamper(store_file, tamper)
    problems = _check(store_file)
    assert problems, f"{case}: check said ok"
    assert any(word in p for p in problems), problems


def _index_leaf(path: Path, index: str) -> tuple[int, int, bytes]:
    conn = sqlite3.connect(path)
    try:
        root = int(_one(conn, "SELECT rootpage FROM sqlite_master WHERE name=?", (index,)))
        page_size = int(_one(conn, "PRAGMA page_size"))
    finally:
        conn.close()
    data = path.read_bytes()
    page = data[(root - 1) * page_size : root * page_size]
    assert page[0] == 0x0A, "the sample's index fits one leaf page"
    return root, page_size, page


def _replay(path: Path, world: str) -> list[StoredAtom]:
    store = SQLiteStorage(str(path))
    try:
        return store.scan(world, FilterSpec())
    finally:
        store.close()


def test_check_finds_an_index_entry_that_no_longer_matches_its_row(store_file: Path) -> None:
    # The last 'beta' entry of atoms_world_seq now says 'betb' (the order stays valid): a
    # replay of 'beta' misses that atom. quick_check does not compare indexes with rows.
    replayed = len(_replay(store_file, "beta"))
    root, page_size, page = _index_leaf(store_file, "atoms_world_seq")
    (cells,) = struct.unpack(">H", page[3:5])
    pointers = [struct.unpack(">H", page[8 + 2 * i : 10 + 2 * i])[0] for i in range(cells)]
    last_beta = [p for p in pointers if b"beta" in page[p : p + 16]][-1]
    at = (root - 1) * page_size + last_beta + page[last_beta : last_beta + 16].index(b"beta")
    data = bytearray(store_file.read_bytes())
    data[at : at + 4] = b"betb"
    store_file.write_bytes(bytes(data))

    assert len(_replay(store_file, "beta")) == replayed - 1  # a read changed
    store = SQLiteStorage(str(store_file))
    try:
        assert store.check(quick=True).ok  # what `storage check --quick` runs misses it
        report = store.check()
    finally:
        store.close()
    assert not report.ok
    assert any("integrity" in p for p in report.problems), report.problems


def test_a_released_atom_checks_clean_and_a_re_hold_behind_its_back_does_not(
    store_file: Path,
) -> None:
    store = SQLiteStorage(str(store_file))
    try:
        held = store.quarantined()[0]
        store.set_quarantine(held.seq, None)
        store.set_quarantine(held.seq, "burst")
        store.set_quarantine(held.seq, None)
        assert store.check().ok
    finally:
        store.close()
    _tamper(
        store_file,
        lambda c: c.execute("UPDATE atoms SET quarantine='burst' WHERE seq=?", (held.seq,)),
    )
    problems = _check(store_file)
    assert any("quarantine" in p and held.atom.id in p for p in problems), problems


def test_check_reads_one_snapshot_while_the_store_is_written(tmp_path: Path) -> None:
    # Atoms, their index rows and world heads land together; a check that read them at
    # different moments would report rows of atoms it had not seen as strays.
    with dwbase.open(tmp_path / "live", embedder=HashingEmbedder(dim=8)) as db:
        stop, started = threading.Event(), threading.Event()

        def write() -> None:
            i = 0
            while not stop.is_set():
                db.remember_batch(
                    [
                        {
                            "world": f"w{j % 3}",
                            "worker": "a",
                            "payload": {"text": f"n {i} {j}"},
                            "labels": [f"l{j % 2}"],
                        }
                        for j in range(20)
                    ]
                )
                i += 1
                started.set()

        writer = threading.Thread(target=write)
        writer.start()
        try:
            assert started.wait(10)
            reports = [db.check() for _ in range(4)]
        finally:
            stop.set()
            writer.join()
        assert db.check().ok
    assert [r.problems for r in reports if not r.ok] == []
    assert reports[-1].records > reports[0].records  # the writes did run meanwhile


def test_a_store_made_before_the_quarantine_log_starts_it_at_its_first_release(
    store_file: Path,
) -> None:
    def drop_log(c: sqlite3.Connection) -> None:
        c.execute("DROP TRIGGER IF EXISTS quarantine_held")  # schema 1 stores have one
        c.execute("DROP TABLE quarantine_log")

    _tamper(store_file, drop_log)
    assert _check(store_file) == []  # nothing to compare with yet
    store = SQLiteStorage(str(store_file))
    try:
        held = store.quarantined()
        store.set_quarantine(held[0].seq, None)  # starts the log from the held atoms as they are
        assert store.check().ok
    finally:
        store.close()
    with dwbase.open(store_file.parent, embedder=HashingEmbedder(dim=8)) as db:
        assert db.remember("alpha", "a", payload_json='{"v": NaN}').held  # logged as it lands
        assert db.check().ok
    _tamper(
        store_file,
        lambda c: c.execute("UPDATE atoms SET quarantine=NULL WHERE seq=?", (held[1].seq,)),
    )
    problems = _check(store_file)
    assert any("quarantine" in p and held[1].atom.id in p for p in problems), problems

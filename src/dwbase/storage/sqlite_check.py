"""SQLite storage: ``storage check`` — what it verifies, and the quarantine log it relies on.

:func:`check_store` reads one consistent snapshot of the store and reports every difference it
finds between what the atoms say and what the rest of the file holds:

* SQLite's own ``PRAGMA integrity_check`` (b-trees, and every index entry against its row), or
  ``quick_check`` with ``quick=True``; FTS5's ``integrity-check`` of the text index (in a
  schema 2 plain store, whose index keeps no text of its own, it also compares the index with
  every atom's text);
* each atom's record checksum and each world's hash chain (tombstones included);
* each world's final chain head, seq and record count against ``world_heads``, the anchor
  kept outside the rows it covers (so removing a world's newest atoms is noticed);
* the text index: exactly one row per atom, holding the atom's text, which is what
  ``payload_text`` makes of its payload;
* the tag and link tables: exactly the atom's labels, flags and links, no more;
* index vectors: a caller's vector is indexed as itself scaled to unit length; an atom without
  one has an embedder vector exactly when the engine would have made one, of the world's
  ``dim``; no vector row belongs to no atom;
* quarantine state: each atom's hold reason equals the last entry of ``quarantine_log``, an
  append-only log written by the store (by ``append`` when a held atom is stored, a trigger
  in schema 1 stores; :func:`log_quarantine` on a change).

What it cannot verify (see docs/operations.md): the values of embedder-made vectors (that
would need the embedder), ``meta`` entries other than ``dim``, and edits made consistently in
every place at once (a store is not signed).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from ..errors import StorageError
from ..model import StoredAtom, payload_text
from ..vector.exact import pack_unit
from .base import GENESIS, CheckReport, chain_next, record_checksum
from .crypto import ErasedRecordError, RecordCipher, aad
from .sqlite_schema import COLS, QUARANTINE_LOG, atom_tags, external_text, row_to_stored

REINDEX = "run `dwbase storage reindex`"
RESTORE = "restore the store from a backup"


def log_quarantine(conn: sqlite3.Connection, seq: int, reason: str | None) -> None:
    """Inside a write transaction: record that atom ``seq`` is now held for ``reason``
    (``None``: released). A store made before the log gets it here, started from its held
    atoms as they are now."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='quarantine_log'").fetchone() is None:
        for ddl in QUARANTINE_LOG:
            conn.execute(ddl)
        conn.execute(
            "INSERT INTO quarantine_log(seq, reason, rec_us) "
            "SELECT seq, quarantine, rec_us FROM atoms WHERE quarantine IS NOT NULL"
        )
    conn.execute(
        "INSERT INTO quarantine_log(seq, reason, rec_us) VALUES(?, ?, ?)",
        (seq, reason, time.time_ns() // 1000),
    )


def check_store(
    conn: sqlite3.Connection, *, quick: bool = False, cipher: RecordCipher | None = None
) -> CheckReport:
    """Verify the store behind ``conn`` (a connection in autocommit mode); never writes.

    With ``cipher`` (an encrypted store) records are decrypted before they are compared; a
    record whose subject key was erased is counted in ``erased``, not reported as damage."""
    report = CheckReport()
    try:
        _sqlite_integrity(conn, report, quick)
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        report.problem(f"sqlite integrity check could not run: {exc}")
    try:
        conn.execute("BEGIN")  # one snapshot for every comparison below
        try:
            _Checker(conn, report, cipher).run()
        finally:
            if conn.in_transaction:  # the connection goes back to a pool: end the snapshot
                conn.execute("ROLLBACK")
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        report.problem(f"storage could not be read: {exc}")
    except Exception as exc:  # a value no DWBase writes (damage): report it, never crash
        report.problem(f"check stopped at a damaged row: {type(exc).__name__}: {exc}")
    return report


def _sqlite_integrity(conn: sqlite3.Connection, report: CheckReport, quick: bool) -> None:
    pragma = "quick_check" if quick else "integrity_check"
    for (line,) in conn.execute(f"PRAGMA {pragma}(100)").fetchall():
        if line != "ok":
            report.problem(f"sqlite {pragma}: {line}")
    external = external_text(conn)
    if quick and not external:
        return
    try:
        # Compares the FTS5 inverted index with the text it was built from (no rows change);
        # rank 1 makes an external-content index compare itself with atoms_text, which is how
        # such a store compares each atom's text with its index entry, so quick checks run it.
        conn.execute("INSERT INTO fts(fts, rank) VALUES('integrity-check', 1)")
    except sqlite3.Error as exc:
        what = (
            "a text index row differs from its atom's text, or the index is damaged"
            if external
            else "text index is damaged"
        )
        report.problem(f"{what} (FTS5 integrity-check: {exc}); {REINDEX}")


class _BySeq:
    """Rows of an index table in seq order, handed out for one atom at a time.

    Rows whose seq belongs to no atom are collected as ``orphans``.
    """

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._next: Any = next(rows, None)
        self.orphans: list[Any] = []

    def take(self, seq: int) -> list[Any]:
        out: list[Any] = []
        while self._next is not None:
            at = self._next[0]
            if isinstance(at, int) and at > seq:
                break
            # a seq that is not a number (a damaged row) belongs to no atom either
            (out if at == seq else self.orphans).append(self._next)
            self._next = next(self._rows, None)
        return out

    def finish(self) -> list[Any]:
        while self._next is not None:
            self.orphans.append(self._next)
            self._next = next(self._rows, None)
        return self.orphans


class _Checker:
    def __init__(
        self, conn: sqlite3.Connection, report: CheckReport, cipher: RecordCipher | None = None
    ) -> None:
        self.conn = conn
        self.report = report
        self.cipher = cipher
        # Schema 2 plain: the index reads each atom's own text, so what is compared per atom is
        # that it has an index entry (a row of fts_docsize); its words, by integrity-check.
        self.external = external_text(conn)
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
        self.has_heads = "world_heads" in tables
        self.has_qlog = "quarantine_log" in tables
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        self.dims: dict[str, int | None] = {}
        for key, value in meta.items():
            if key.startswith("dim:"):
                self.dims[key[4:]] = _int(value)
                if self.dims[key[4:]] is None or (self.dims[key[4:]] or 0) <= 0:
                    report.problem(f"dim metadata of world {key[4:]!r} is not a size: {value!r}")
        embedder = meta.get("embedder")
        self.embedder = embedder
        self.embedder_dim = _int(embedder.rsplit(":", 1)[-1]) if embedder else None
        self.reembed_upto = _int(meta.get("embedder_seq", "0")) or 0

    def run(self) -> None:
        conn, report = self.conn, self.report
        tags = _BySeq(iter(conn.execute("SELECT seq, tag FROM tags ORDER BY seq, tag")))
        links = _BySeq(
            iter(conn.execute("SELECT seq, target, kind FROM links ORDER BY seq, target, kind"))
        )
        vectors = _BySeq(iter(conn.execute("SELECT seq, data FROM vectors ORDER BY seq")))
        texts = _BySeq(
            iter(
                conn.execute(
                    "SELECT id, NULL FROM fts_docsize ORDER BY id"
                    if self.external
                    else "SELECT rowid, text FROM fts ORDER BY rowid"
                )
            )
        )
        qlog = (
            _BySeq(iter(conn.execute("SELECT seq, reason FROM quarantine_log ORDER BY seq, n")))
            if self.has_qlog
            else None
        )
        heads: dict[str, tuple[int, bytes, int]] = {}  # world -> (seq, chain, records)
        rows = conn.execute(
            f"SELECT {COLS}, checksum, chain, 0 FROM atoms UNION ALL "
            "SELECT seq, id, world, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            "NULL, NULL, NULL, checksum, chain, 1 FROM tombstones ORDER BY 1"
        )
        for row in rows:
            seq, aid, world = row[0], row[1], row[2]
            checksum, chain, tomb = row[15], row[16], row[17]
            _, prev, count = heads.get(world, (0, GENESIS, 0))
            if chain_next(prev, checksum) != chain:
                report.problem(f"hash chain of world {world!r} breaks at seq {seq} ({aid})")
            heads[world] = (seq, chain, count + 1)
            if tomb:
                continue
            report.records += 1
            try:
                stored = row_to_stored(row[:15], self.cipher)
            except ErasedRecordError:
                # Its subject key was destroyed on purpose: the chain above still verifies,
                # and its text and vector index rows were removed with the key.
                report.erased += 1
                for stream in (texts, tags, links, vectors):
                    stream.take(seq)
                if qlog is not None:
                    qlog.take(seq)
                continue
            except StorageError as exc:
                report.problem(exc.message)
                for stream in (texts, tags, links, vectors):
                    stream.take(seq)  # its index rows are not strays: the atom is damaged
                if qlog is not None:
                    qlog.take(seq)
                continue
            expected = record_checksum(stored.atom)
            if self.cipher is not None:
                expected = self.cipher.keyed_checksum(expected)
            if expected != checksum:
                report.problem(f"atom {aid} (seq {seq}) does not match its checksum")
            self._text(stored, texts.take(seq))
            self._tags(stored, tags.take(seq))
            self._links(stored, links.take(seq))
            self._vector(stored, vectors.take(seq))
            if qlog is not None:
                self._quarantine(stored, qlog.take(seq))
        report.worlds = len(heads)
        for what, stream in (("text index", texts), ("tag", tags), ("link", links)):
            stray = _seqs(stream.finish())
            if stray:
                report.problem(f"{what} rows belong to no atom (seq {_few(stray)}); {REINDEX}")
        stray = _seqs(vectors.finish())
        if stray:
            report.problem(f"vector rows belong to no atom (seq {_few(stray)}); {RESTORE}")
        if self.has_heads:
            self._heads(heads)

    # -------------------------------------------------------------- one atom

    def _text(self, s: StoredAtom, rows: list[Any]) -> None:
        aid, seq = s.atom.id, s.seq
        try:
            expected = payload_text(json.loads(s.atom.payload_json))
        except (ValueError, RecursionError) as exc:
            self.report.problem(f"atom {aid} (seq {seq}): payload cannot be read ({exc})")
            expected = s.text
        if s.text != expected:
            self.report.problem(
                f"atom {aid} (seq {seq}): stored text is not its payload's text; {RESTORE}"
            )
        indexed = s.text if self.cipher is None else self.cipher.index_text(s.text)
        if not rows:
            self.report.problem(f"atom {aid} (seq {seq}) has no text index row; {REINDEX}")
        elif not self.external and rows[0][1] != indexed:
            self.report.problem(
                f"atom {aid} (seq {seq}): text index row differs from its text; {REINDEX}"
            )

    def _tags(self, s: StoredAtom, rows: list[Any]) -> None:
        found = {str(r[1]) for r in rows}
        expected = set(atom_tags(s.atom))
        if found != expected:
            self.report.problem(
                f"atom {s.atom.id} (seq {s.seq}): tag rows {sorted(found)} differ from its "
                f"labels and flags {sorted(expected)}; {REINDEX}"
            )

    def _links(self, s: StoredAtom, rows: list[Any]) -> None:
        found = {(str(r[1]), str(r[2])) for r in rows}
        expected = {(x.target, x.kind) for x in s.atom.links}
        if found != expected:
            self.report.problem(
                f"atom {s.atom.id} (seq {s.seq}): link rows {sorted(found)} differ from its "
                f"links {sorted(expected)}; {REINDEX}"
            )

    def _vector(self, s: StoredAtom, rows: list[Any]) -> None:
        aid, seq, world = s.atom.id, s.seq, s.atom.world
        data = bytes(rows[0][1]) if rows else None
        if data is not None and self.cipher is not None:
            try:
                data = self.cipher.open(data, aad(aid, "ivec"))
            except StorageError as exc:
                self.report.problem(f"atom {aid} (seq {seq}): index vector: {exc.message}")
                return
        dim = self.dims.get(world)
        given = s.atom.vector
        if given is not None:
            if dim is not None and len(given) != dim:
                self.report.problem(
                    f"atom {aid} (seq {seq}) has a {len(given)}-dim vector but world {world!r} "
                    f"has dim {dim} in its metadata"
                )
            if data is None:
                self.report.problem(f"atom {aid} (seq {seq}): its vector has no index row")
            elif data != pack_unit(given):
                self.report.problem(
                    f"atom {aid} (seq {seq}): index vector is not its own vector (unit length); "
                    f"{RESTORE}"
                )
            return
        # An embedder vector: made only for text, of the world's dim, by the embedder the
        # store records (atoms up to ``embedder_seq`` were made by an earlier one).
        current = seq > self.reembed_upto
        embedded = dim is not None and dim == self.embedder_dim
        if data is not None:
            if not s.text:
                self.report.problem(
                    f"atom {aid} (seq {seq}) has no text, yet an index vector; {RESTORE}"
                )
            elif current and dim is not None and len(data) != 4 * dim:
                self.report.problem(
                    f"atom {aid} (seq {seq}): index vector has {len(data)} bytes, world "
                    f"{world!r} has dim {dim} ({4 * dim} bytes); {RESTORE}"
                )
            elif current and dim is not None and self.embedder_dim is not None and not embedded:
                self.report.problem(
                    f"atom {aid} (seq {seq}) has an index vector, but world {world!r} (dim "
                    f"{dim}) is not embedded by {self.embedder} (its dim metadata or the "
                    f"vector row is wrong)"
                )
        elif current and embedded and s.text:
            self.report.problem(f"atom {aid} (seq {seq}) has no index vector; {RESTORE}")

    def _quarantine(self, s: StoredAtom, log: list[Any]) -> None:
        logged = log[-1][1] if log else None
        if s.quarantine != logged:
            state = f"held as {s.quarantine!r}" if s.quarantine is not None else "not held"
            says = f"held as {logged!r}" if logged is not None else "not held"
            self.report.problem(
                f"atom {s.atom.id} (seq {s.seq}) is {state}, but the quarantine log says "
                f"{says} (edited behind the store's back)"
            )

    # -------------------------------------------------------------- worlds

    def _heads(self, heads: dict[str, tuple[int, bytes, int]]) -> None:
        anchored = {
            str(w): (int(q), bytes(c), int(n))
            for w, q, c, n in self.conn.execute("SELECT world, seq, chain, count FROM world_heads")
        }
        for world in sorted(set(heads) | set(anchored), key=repr):
            have, want = heads.get(world), anchored.get(world)
            if want is None:
                self.report.problem(
                    f"world {world!r} has no anchored head (world_heads): its newest atoms "
                    "cannot be verified"
                )
            elif have is None:
                self.report.problem(
                    f"world {world!r}: its anchored head counts {want[2]} record(s), none are "
                    f"stored; {RESTORE}"
                )
            elif have[2] != want[2]:
                self.report.problem(
                    f"world {world!r} holds {have[2]} record(s) but {want[2]} were appended "
                    f"(world_heads): atoms were removed behind the store's back; {RESTORE}"
                )
            elif have[:2] != want[:2]:
                self.report.problem(
                    f"world {world!r} ends at seq {have[0]}, its anchored head is seq "
                    f"{want[0]} with another chain; {RESTORE}"
                )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _seqs(rows: list[Any]) -> list[str]:
    return [str(q) for q in sorted({r[0] for r in rows}, key=lambda q: (str(type(q)), q))]


def _few(seqs: list[str]) -> str:
    shown = ", ".join(str(s) for s in seqs[:5])
    return shown + (f" and {len(seqs) - 5} more" if len(seqs) > 5 else "")

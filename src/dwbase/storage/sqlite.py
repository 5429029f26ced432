"""SQLite storage (the embedded default): WAL, one writer under a lock, a reader per thread.

Durability modes (``durability=``):

* ``"normal"`` (default) — ``synchronous=NORMAL`` in WAL mode. A remember that returned has
  been written to the WAL, so it survives a crash of the process (kill -9). After a power loss
  or OS crash the last few transactions may roll back; the store stays consistent.
* ``"full"`` — ``synchronous=FULL``: the WAL is fsynced on every commit, so an acknowledged
  atom also survives power loss, at the cost of one fsync per remember/batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, StorageError
from ..model import StoredAtom
from ..security.keys import KeyProvider, default_key_provider
from .base import (
    GENESIS,
    CheckReport,
    NewRecord,
    ScoreRow,
    chain_next,
    record_checksum,
    vector_bytes,
)
from .crypto import (
    ENCRYPTION_META,
    KEYS_DIR,
    ErasedRecordError,
    RecordCipher,
    aad,
    dump_state,
    new_state,
    open_cipher,
)
from .lock import StoreLock
from .sqlite_check import check_store, log_quarantine
from .sqlite_health import WalWatch, WriteState
from .sqlite_keys import KeyAdmin
from .sqlite_queries import SQLiteQueries
from .sqlite_schema import (
    COLS,
    HEADS_BACKFILL,
    HEADS_TABLE,
    PAGE_SIZE,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    STORE_MARKER,
    TOMBSTONES_ID_INDEX,
    atom_tags,
    convert_text_layout,
    external_text,
    json_links,
    json_strings,
    kept_text,
    row_to_stored,
    schema,
)
from .sqlite_text import LexicalSearch


class SQLiteStorage(SQLiteQueries, LexicalSearch, KeyAdmin):
    """SQLite adapter of the storage port. Safe to share between threads.

    ``encryption_key`` (a key id) creates a new store encrypted under that key, and requires
    an existing store to be encrypted under it; an encrypted store opens with its keys from
    ``key_provider`` (default: ``DWBASE_KEY_<ID>`` variables, ``DWBASE_KEY_DIR`` files) even
    when no key id is given. See :mod:`dwbase.storage.crypto`.
    """

    #: Idle reader connections kept for reuse; more readers than this are closed after use.
    READERS_IDLE = 8

    def __init__(
        self,
        path: str,
        *,
        durability: str = "normal",
        lock: bool = True,
        encryption_key: str | None = None,
        key_provider: KeyProvider | None = None,
    ) -> None:
        if durability not in ("normal", "full"):
            raise InvalidInputError(
                f"durability {durability!r} must be 'normal' or 'full'", field="durability"
            )
        self.path = path
        self.durability = durability
        # Health: writes that failed for want of space or a writable file; checkpoint trouble.
        self.write_state = WriteState()
        self.wal_watch = WalWatch(path)
        self._write_lock = threading.RLock()
        # A bounded pool of reader connections (not one per thread: a node that runs for weeks
        # sees thousands of short-lived threads).
        self._idle: list[sqlite3.Connection] = []
        self._stemmer_ready: set[int] = set()  # id() of pooled connections with temp.stem
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        # Chain heads by world, valid while no other connection has committed (data_version).
        self._heads: dict[str, tuple[int, bytes, int]] = {}
        self._seen_version: int | None = None
        self._has_heads_table = True
        self._external_text = False  # set by _open_file: see sqlite_schema.external_text
        self._has_tombstone_ids = True  # False: made before TOMBSTONES_ID_INDEX (_open_file)
        # True: append logs held atoms in quarantine_log (schema 2); a schema 1 store's trigger
        # does (or, made before the log, nothing logs them until its first hold or release).
        self._log_held = True
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        # Generation bumps this object committed, and those of the transaction under way.
        self._own_bumps = 0
        self._own_bumps_pending = 0
        # Read caches for ask. Score rows hold only immutable atom fields; the lexical ones
        # (stems, document counts) are described in sqlite_text.py.
        self._score_cache: dict[int, ScoreRow] = {}
        # Decoded atoms for ask's hits; a quarantine change or a delete drops them all.
        self._atom_cache: dict[int, StoredAtom] = {}
        self._atom_version = 0
        self._stems: dict[str, str] = {}
        self._df: dict[str, tuple[int, int]] = {}
        # Ids that some atom links to (a superset is harmless), caught up by seq before each
        # use: most candidates of an ask have no incoming link and need no link query.
        # None: not loaded yet, or too many to track.
        self._link_targets: set[str] | None = None
        self._link_targets_known = False
        self._link_seq = 0  # links of atoms up to this seq are in _link_targets
        # the store's size for lexical pruning: the last max_seq() read or seq written here
        self._size_hint = 0
        self._large_worlds: set[str] = set()
        data_dir = os.path.dirname(os.path.abspath(path))
        self._cipher: RecordCipher | None = None
        self._encryption_key = encryption_key
        self._key_provider = key_provider or default_key_provider()
        self._keys_dir = os.path.join(data_dir, KEYS_DIR)
        self._lock = StoreLock(data_dir) if lock and path != ":memory:" else None
        if self._lock is not None:
            self._lock.acquire_shared()
        try:
            self._open_file(path, data_dir)
        except BaseException:
            with self._conns_lock:
                for conn in self._all_conns:
                    with suppress(sqlite3.Error):
                        conn.close()
                self._all_conns.clear()
            if self._lock is not None:
                self._lock.release()
            raise
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="dwbase-wal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _open_file(self, path: str, data_dir: str) -> None:
        """Open an existing store without writing to it, or create a new one.

        A data dir that once held a store keeps a marker file; if the store file is gone or
        empty, opening is refused instead of silently starting a new, empty store.
        """
        marker = os.path.join(data_dir, STORE_MARKER)
        missing = not os.path.exists(path)
        fresh = missing or os.path.getsize(path) == 0
        if fresh and os.path.exists(marker):
            raise StorageError(
                f"{data_dir} held a DWBase store ({STORE_MARKER} is there) but "
                f"{os.path.basename(path)} is {'missing' if missing else 'empty'}; restore it "
                f"from a backup (`dwbase backup restore`), or delete {marker} to start a new, "
                "empty store here",
                path=path,
            )
        # A new encrypted store's key is checked before anything is written.
        state = (
            new_state(self._key_provider, self._encryption_key)
            if fresh and self._encryption_key is not None
            else None
        )
        try:
            # A new store's page size is set before WAL mode and its first table fix it.
            self._writer = self._connect(page_size=PAGE_SIZE if fresh else None)
            if fresh:
                with self._write_lock:
                    self._writer.executescript(schema(encrypted=state is not None))
                    self._writer.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', ?)",
                        (SCHEMA_VERSION,),
                    )
                    if state is not None:
                        self._writer.execute(
                            "INSERT OR IGNORE INTO meta(key, value) VALUES(?, ?)",
                            (ENCRYPTION_META, dump_state(state)),
                        )
            else:
                tables = {
                    str(r[0])
                    for r in self._writer.execute(
                        "SELECT name FROM sqlite_master WHERE type='table'"
                    )
                }
                if "atoms" not in tables or "meta" not in tables:
                    raise StorageError(
                        f"{path} is an SQLite file but not a DWBase store", path=path
                    )
                row = self._writer.execute(
                    "SELECT value FROM meta WHERE key='schema_version'"
                ).fetchone()
                if row is None or row[0] not in READABLE_VERSIONS:
                    raise StorageError(
                        f"store at {path} has schema version {row[0] if row else 'none'}, this "
                        f"DWBase reads {' and '.join(READABLE_VERSIONS)}",
                        path=path,
                    )
                # Stores made before the anchor table get it in their first write.
                self._has_heads_table = "world_heads" in tables
                names = {
                    str(r[0])
                    for r in self._writer.execute(
                        "SELECT name FROM sqlite_master WHERE name IN "
                        "('tombstones_id', 'quarantine_held')"
                    )
                }
                self._has_tombstone_ids = "tombstones_id" in names
                self._log_held = "quarantine_log" in tables and "quarantine_held" not in names
            self._external_text = external_text(self._writer)
            enc = self._writer.execute(
                "SELECT value FROM meta WHERE key=?", (ENCRYPTION_META,)
            ).fetchone()
            self._cipher = open_cipher(
                self._key_provider,
                str(enc[0]) if enc else None,
                self._encryption_key,
                Path(self._keys_dir),
                path,
            )
            # Checkpoints run on a background connection, not inside a remember: an automatic
            # checkpoint would copy and sync the WAL while the caller waits (a p99 spike).
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            # UnicodeDecodeError: SQLite's message quotes a damaged schema that is not UTF-8
            raise StorageError(f"cannot open SQLite store at {path}: {exc}") from exc
        self._marker = marker
        self._marker_written = os.path.exists(marker)
        if fresh:
            self._write_marker()

    def _write_marker(self) -> None:
        if self._marker_written:
            return
        tmp = self._marker + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"store": "dwbase", "file": os.path.basename(self.path)}, fh)
            fh.write("\n")
        os.replace(tmp, self._marker)
        self._marker_written = True

    def _checkpoint_loop(self, interval: float = 0.5) -> None:
        # With autocheckpoint off, checkpoints that keep failing let the WAL grow without bound:
        # self.wal_watch (sqlite_health.py) logs and counts each failure, shows it in health and
        # falls back to a bounded TRUNCATE checkpoint when the WAL passes its limit.
        watch = self.wal_watch
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(interval):
            if not self._dirty.is_set():
                continue
            self._dirty.clear()
            try:
                if conn is None:
                    conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
                if watch.checkpoint(conn):
                    self._dirty.set()  # frames left behind (a reader): again on the next tick
            except Exception as exc:  # counted, never swallowed; the loop must go on
                watch.failed(exc)
                self._dirty.set()  # retried on the next tick, on a fresh connection
                if conn is not None:
                    with suppress(sqlite3.Error):
                        conn.close()
                    conn = None
        if conn is not None:
            with suppress(sqlite3.Error):
                conn.close()

    # ------------------------------------------------------------------ connections

    def _connect(self, *, page_size: int | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        if page_size is not None:
            conn.execute(f"PRAGMA page_size={int(page_size)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA temp_store=MEMORY")
        with self._conns_lock:
            self._all_conns.append(conn)
        return conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A reader connection from the pool, returned to it afterwards."""
        if self._closed:
            raise StorageError("the store is closed")
        with self._conns_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._conns_lock:
                keep = not self._closed and len(self._idle) < self.READERS_IDLE
                if keep:
                    self._idle.append(conn)
                else:
                    self._stemmer_ready.discard(id(conn))
                    if conn in self._all_conns:
                        self._all_conns.remove(conn)
            if not keep:
                with suppress(sqlite3.Error):
                    conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StorageError("the store is closed")
        with self._write_lock:
            conn = self._writer
            self._own_bumps_pending = 0
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self.write_state.failed(exc)
                raise StorageError(f"storage write could not start: {exc}") from exc
            try:
                yield conn
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    self.write_state.failed(exc)
                    raise StorageError(f"storage write failed, nothing was changed: {exc}") from exc
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    self.write_state.failed(exc)
                    raise StorageError(f"storage commit failed: {exc}") from exc
                self._own_bumps += self._own_bumps_pending
                self.write_state.succeeded()
                self._dirty.set()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._reading() as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"storage read failed: {exc}") from exc

    # ------------------------------------------------------------------ writes

    def _sync_heads(self, conn: sqlite3.Connection, version: int) -> None:
        """Inside a write transaction: forget cached chain heads if another connection wrote.

        ``PRAGMA data_version`` moves when any other connection (another process, or another
        store object in this one) commits, so a head cached from this connection's own writes
        is used only while nobody else has written: the head is always the store's own.
        """
        if version != self._seen_version:
            self._heads.clear()
            self._seen_version = version
        if not self._has_heads_table:
            # A store made before the anchor table: build it from the rows, in this write.
            conn.execute(HEADS_TABLE)
            conn.execute(HEADS_BACKFILL)
            self._has_heads_table = True

    def _head(self, conn: sqlite3.Connection, world: str) -> tuple[int, bytes, int]:
        """``(seq, chain, count)`` of ``world``'s last record, from the anchor table."""
        head = self._heads.get(world)
        if head is None:
            row = conn.execute(
                "SELECT seq, chain, count FROM world_heads WHERE world=?", (world,)
            ).fetchone()
            head = (int(row[0]), bytes(row[1]), int(row[2])) if row else (0, GENESIS, 0)
        return head

    def append(self, records: Sequence[NewRecord]) -> list[StoredAtom]:
        if self._closed:
            raise StorageError("the store is closed")
        if not records:
            return []
        try:
            with self._write_lock:
                heads_before = dict(self._heads)
                try:
                    with self._tx() as conn:
                        stored = self._append_locked(conn, records)
                    self._has_tombstone_ids = True
                    self._write_marker()
                    if stored:
                        self._size_hint = max(self._size_hint, *(a.seq for a in stored))
                    return stored
                except BaseException:
                    self._heads = heads_before
                    raise
        except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
            # ValueError covers UnicodeEncodeError (unpaired surrogates), OverflowError integers
            # past 64 bits: the record cannot be stored, and the transaction rolled back.
            raise StorageError(f"storage write failed, nothing was stored: {exc}") from exc

    def _append_locked(
        self, conn: sqlite3.Connection, records: Sequence[NewRecord]
    ) -> list[StoredAtom]:
        if not self._has_tombstone_ids:
            conn.execute(TOMBSTONES_ID_INDEX)  # in this write: opening never writes
        ids = [r.atom.id for r in records]
        existing: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = conn.execute(
                f"SELECT id FROM atoms WHERE id IN ({','.join('?' * len(chunk))}) "
                f"UNION SELECT id FROM tombstones WHERE id IN ({','.join('?' * len(chunk))})",
                chunk + chunk,
            ).fetchall()
            existing.update(r[0] for r in rows)
        row = conn.execute(
            "SELECT (SELECT max(m) FROM (SELECT max(seq) m FROM atoms "
            "UNION ALL SELECT max(seq) FROM tombstones)), "
            "(SELECT data_version FROM pragma_data_version), "
            f"(SELECT value FROM meta WHERE key='{ENCRYPTION_META}')"
        ).fetchone()
        seq = row[0] or 0
        self._sync_heads(conn, int(row[1]))
        cipher = self._cipher
        if cipher is not None:
            cipher.refresh(row[2])  # a rotation (here or in another process) moved the key
        # A plain schema 2 store keeps no second copy of a text its payload holds as it is.
        once = self._external_text and cipher is None
        touched: set[str] = set()
        atom_rows: list[tuple[Any, ...]] = []
        tag_rows: list[tuple[str, int]] = []
        link_rows: list[tuple[str, int, str]] = []
        vec_rows: list[tuple[int, bytes]] = []
        fts_rows: list[tuple[int, str]] = []
        held_rows: list[tuple[int, str, int]] = []
        log_held = self._log_held
        out: list[StoredAtom] = []
        heads = self._heads
        for rec in records:
            a = rec.atom
            if a.id in existing:
                continue
            existing.add(a.id)
            seq += 1
            checksum = record_checksum(a)
            if cipher is not None:  # a plain hash would let a guessed record be confirmed
                checksum = cipher.keyed_checksum(checksum)
            world = a.world
            _, prev, count = self._head(conn, world)
            chain = chain_next(prev, checksum)
            heads[world] = (seq, chain, count + 1)
            touched.add(world)
            payload: str | bytes = a.payload_json
            vector = vector_bytes(a.vector) if a.vector is not None else None
            text: str | bytes | None = kept_text(a.payload_json, rec.text) if once else rec.text
            index_vector = rec.index_vector
            fts_text = rec.text
            if cipher is not None:
                kid = cipher.key_for(a)
                payload = cipher.seal(a.payload_json.encode(), aad(a.id, "payload_json"), kid)
                if vector is not None:
                    vector = cipher.seal(vector, aad(a.id, "vector"), kid)
                text = cipher.seal(rec.text.encode(), aad(a.id, "text"), kid)
                if index_vector is not None:
                    index_vector = cipher.seal(index_vector, aad(a.id, "ivec"), kid)
                fts_text = cipher.index_text(rec.text)
            atom_rows.append(
                (
                    seq,
                    a.id,
                    world,
                    a.worker,
                    a.kind,
                    rec.ts_us,
                    rec.recorded_us,
                    a.importance,
                    payload,
                    vector,
                    json_strings(a.flags),
                    json_strings(a.labels),
                    json_links(a.links),
                    text,
                    rec.quarantine,
                    checksum,
                    chain,
                )
            )
            for label in a.labels:
                tag_rows.append(("l:" + label, seq))
            for flag in a.flags:
                tag_rows.append(("f:" + flag, seq))
            for x in a.links:
                link_rows.append((x.target, seq, x.kind))
            if index_vector is not None:
                vec_rows.append((seq, index_vector))
            fts_rows.append((seq, fts_text))
            if rec.quarantine is not None and log_held:
                held_rows.append((seq, rec.quarantine, rec.recorded_us))
            out.append(StoredAtom(a, seq, rec.ts_us, rec.recorded_us, rec.text, rec.quarantine))
        conn.executemany(
            f"INSERT INTO atoms({COLS}, checksum, chain) VALUES ({','.join('?' * 17)})", atom_rows
        )
        if held_rows:
            conn.executemany(
                "INSERT INTO quarantine_log(seq, reason, rec_us) VALUES(?, ?, ?)", held_rows
            )
        if tag_rows:
            conn.executemany("INSERT OR IGNORE INTO tags(tag, seq) VALUES(?, ?)", tag_rows)
        if link_rows:
            conn.executemany(
                "INSERT OR IGNORE INTO links(target, seq, kind) VALUES(?, ?, ?)", link_rows
            )
        if vec_rows:
            conn.executemany("INSERT INTO vectors(seq, data) VALUES(?, ?)", vec_rows)
        conn.executemany("INSERT INTO fts(rowid, text) VALUES(?, ?)", fts_rows)
        conn.executemany(
            "INSERT INTO world_heads(world, seq, chain, count) VALUES(?, ?, ?, ?) "
            "ON CONFLICT(world) DO UPDATE SET seq=excluded.seq, chain=excluded.chain, "
            "count=excluded.count",
            [(w, *heads[w]) for w in sorted(touched)],
        )
        return out

    def set_quarantine(self, seq: int, reason: str | None) -> None:
        try:
            with self._tx() as conn:
                if conn.execute(
                    "UPDATE atoms SET quarantine=? WHERE seq=?", (reason, seq)
                ).rowcount:
                    log_quarantine(conn, seq, reason)
                self._bump_generation(conn)
        finally:
            self._atoms_changed()

    def delete(self, seqs: Sequence[int]) -> int:
        if not seqs:
            return 0
        self.forget_caches()
        n = 0
        try:
            with self._tx() as conn:
                for i in range(0, len(seqs), 500):
                    chunk = list(seqs[i : i + 500])
                    marks = ",".join("?" * len(chunk))
                    conn.execute(
                        "INSERT OR IGNORE INTO tombstones(seq, world, id, checksum, chain) "
                        f"SELECT seq, world, id, checksum, chain FROM atoms WHERE seq IN ({marks})",
                        chunk,
                    )
                    rows = conn.execute(
                        f"SELECT seq, labels, flags FROM atoms WHERE seq IN ({marks})", chunk
                    ).fetchall()
                    for seq, labels, flags in rows:
                        tags = ["l:" + x for x in json.loads(labels)] + [
                            "f:" + x for x in json.loads(flags)
                        ]
                        conn.executemany(
                            "DELETE FROM tags WHERE tag=? AND seq=?", [(t, seq) for t in tags]
                        )
                    conn.execute(f"DELETE FROM links WHERE seq IN ({marks})", chunk)
                    conn.execute(f"DELETE FROM vectors WHERE seq IN ({marks})", chunk)
                    conn.execute(f"DELETE FROM fts WHERE rowid IN ({marks})", chunk)
                    n += conn.execute(f"DELETE FROM atoms WHERE seq IN ({marks})", chunk).rowcount
                self._bump_generation(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"delete failed, nothing was removed: {exc}") from exc
        finally:
            self._atoms_changed()  # again: a read during the delete may have cached a victim
        return n

    def _bump_generation(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value=CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        )
        self._own_bumps_pending += 1  # counted in _own_bumps once the transaction commits

    def _watch_conn(self) -> sqlite3.Connection:
        """The connection :meth:`look` uses (held under ``_watch_lock``)."""
        if self._closed:
            raise StorageError("the store is closed")
        if self._watch is None:
            self._watch = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        return self._watch

    def look(self) -> tuple[int, int, int]:
        """What a look for other processes' work needs, in one statement:

        * ``data_version`` of this store's watch connection, which moves whenever another
          connection (another process) commits;
        * the highest seq stored (atoms and tombstones);
        * the store's generation (deletes, quarantine changes and reindexes, counted in the
          ``meta`` table by every process) less those this store object made itself, so it
          moves only when another process changed what appends cannot show.
        """
        with self._watch_lock:
            try:
                version, top, gen = (
                    self._watch_conn()
                    .execute(
                        "SELECT (SELECT data_version FROM pragma_data_version), "
                        "(SELECT max(m) FROM (SELECT max(seq) m FROM atoms "
                        "UNION ALL SELECT max(seq) FROM tombstones)), "
                        "(SELECT value FROM meta WHERE key='generation')"
                    )
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise StorageError(f"storage read failed: {exc}") from exc
        self._size_hint = int(top or 0)
        return int(version), self._size_hint, int(gen or 0) - self._own_bumps

    def scan_seqs(self, after_seq: int, upto_seq: int) -> list[StoredAtom]:
        """Every stored atom (any world, held ones too) with ``after_seq < seq <= upto_seq``."""
        return self._atoms(
            self._read(
                f"SELECT {COLS} FROM atoms WHERE seq > ? AND seq <= ? ORDER BY seq",
                (after_seq, upto_seq),
            )
        )

    def meta_set(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # ------------------------------------------------------------------ reads
    def forget_caches(self) -> None:
        """Drop the read caches: after a delete or reindex here, or when another process
        changed the store in a way its appends do not show."""
        self._score_cache.clear()
        self._df.clear()
        self._large_worlds.clear()
        self._atoms_changed()
        self._link_targets, self._link_targets_known = None, False

    def max_seq(self) -> int:
        row = self._read(
            "SELECT max(m) FROM (SELECT max(seq) m FROM atoms "
            "UNION ALL SELECT max(seq) FROM tombstones)"
        )
        self._size_hint = int(row[0][0] or 0)
        return self._size_hint

    def meta_get(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None

    def used_bytes(self) -> int:
        with self._reading() as conn:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    # ------------------------------------------------------------------ maintenance

    def check(self, *, quick: bool = False) -> CheckReport:
        """Verify the store: see :mod:`dwbase.storage.sqlite_check` for what is compared."""
        with self._reading() as conn:
            return check_store(conn, quick=quick, cipher=self._cipher)

    def reindex(self) -> int:
        self.forget_caches()
        external = self._external_text
        with self._tx() as conn:
            conn.execute("DELETE FROM tags")
            conn.execute("DELETE FROM links")
            if not external:
                # An external-content index is rebuilt from atoms_text in one pass below
                # ('rebuild'); a DELETE would read every text only to find its words.
                conn.execute("DELETE FROM fts")
            self._bump_generation(conn)
            n = 0
            cipher = self._cipher
            for row in conn.execute(f"SELECT {COLS} FROM atoms ORDER BY seq").fetchall():
                try:
                    s = row_to_stored(row, cipher)
                except ErasedRecordError:
                    continue  # its key is gone: nothing of it is indexed again
                conn.executemany(
                    "INSERT OR IGNORE INTO tags(tag, seq) VALUES(?, ?)",
                    [(t, s.seq) for t in atom_tags(s.atom)],
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO links(target, seq, kind) VALUES(?,?,?)",
                    [(x.target, s.seq, x.kind) for x in s.atom.links],
                )
                if not external:
                    text = s.text if cipher is None else cipher.index_text(s.text)
                    conn.execute("INSERT INTO fts(rowid, text) VALUES(?, ?)", (s.seq, text))
                n += 1
            if external:
                conn.execute("INSERT INTO fts(fts) VALUES('rebuild')")
        return n

    def compact(self) -> dict[str, Any]:
        """Merge the text index, VACUUM the file and truncate the WAL (reclaims disk space).

        A plain schema 1 store is given schema 2's text layout first (each text stored once:
        :func:`~dwbase.storage.sqlite_schema.convert_text_layout`); ``converted`` says so."""
        if self._closed:
            raise StorageError("the store is closed")
        exclusive = (
            self._lock.exclusive("compact the store")
            if self._lock is not None
            else contextlib.nullcontext()
        )
        with self._write_lock, exclusive:
            conn = self._writer
            convert = not self._external_text and self._cipher is None
            try:
                if convert:
                    convert_text_layout(conn)
                    self._external_text = True
                    self.forget_caches()
            except sqlite3.Error as exc:
                raise StorageError(f"compaction failed, the store is unchanged: {exc}") from exc
            try:
                conn.execute("INSERT INTO fts(fts) VALUES('optimize')")
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                done = (
                    "after its text layout was converted (the store is consistent)"
                    if convert
                    else "the store is unchanged"
                )
                raise StorageError(f"compaction failed, {done}: {exc}") from exc
        return {"file_bytes": os.path.getsize(self.path), "converted": convert}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._checkpointer.join(timeout=10)
        with self._write_lock, self._conns_lock:
            with suppress(sqlite3.Error):
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for conn in self._all_conns:
                with suppress(sqlite3.Error):
                    conn.close()
            self._all_conns.clear()
            self._idle.clear()
        with self._watch_lock:
            if self._watch is not None:
                with suppress(sqlite3.Error):
                    self._watch.close()
                self._watch = None
        if self._lock is not None:
            self._lock.release()


def sqlite_path(data_dir: str) -> str:
    os.makedirs(data_dir, exist_ok=True)
    return os.path.join(data_dir, "dwbase.sqlite3")

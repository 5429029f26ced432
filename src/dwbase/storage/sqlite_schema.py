"""SQLite storage: the schema and the row codec (how an atom row becomes a ``StoredAtom``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring as _encode_str  # json.dumps' own escaper
from typing import Any

from ..errors import StorageError
from ..model import Atom, Link, StoredAtom
from ..timeutil import format_instant
from .base import vector_from_bytes
from .crypto import RecordCipher, aad

# Schema 2 (stores made since): the text index is external-content, so a plain store keeps
# each atom's text once (see ``TEXT_VIEW``), and pages are 16 KiB. Schema 1 stores (the text
# index kept its own copy of every text, 4 KiB pages) are read and written in their own layout:
# opening a store never writes to it.
SCHEMA_VERSION = "2"
READABLE_VERSIONS = ("1", "2")

#: Page size of a new store: a 1,024-byte vector row fits 15 times in a 16 KiB page (1,092 bytes
#: each) against 3 times in 4 KiB (1,365 bytes each).
PAGE_SIZE = 16384

ATOMS_TABLE = """CREATE TABLE IF NOT EXISTS atoms(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  world TEXT NOT NULL,
  worker TEXT NOT NULL,
  kind TEXT NOT NULL,
  ts_us INTEGER NOT NULL,
  rec_us INTEGER NOT NULL,
  importance REAL NOT NULL,
  payload_json TEXT NOT NULL,
  vector BLOB,
  flags TEXT NOT NULL,
  labels TEXT NOT NULL,
  links TEXT NOT NULL,
  text TEXT,
  quarantine TEXT,
  checksum BLOB NOT NULL,
  chain BLOB NOT NULL
)"""
ATOMS_INDEXES = (
    "CREATE INDEX IF NOT EXISTS atoms_world_seq ON atoms(world, seq)",
    "CREATE INDEX IF NOT EXISTS atoms_world_ts ON atoms(world, ts_us, seq)",
    "CREATE INDEX IF NOT EXISTS atoms_quarantined ON atoms(world, seq) "
    "WHERE quarantine IS NOT NULL",
)
FTS_VOCAB = "CREATE VIRTUAL TABLE IF NOT EXISTS fts_vocab USING fts5vocab(fts, 'row')"

_INDEXES = ";\n".join(ATOMS_INDEXES)
_TABLES = f"""{ATOMS_TABLE};
{_INDEXES};
CREATE TABLE IF NOT EXISTS tags(tag TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY(tag, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links(target TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
  PRIMARY KEY(target, seq, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vectors(seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones(seq INTEGER PRIMARY KEY, world TEXT NOT NULL,
  id TEXT NOT NULL, checksum BLOB NOT NULL, chain BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_world ON tombstones(world, seq);
CREATE INDEX IF NOT EXISTS tombstones_id ON tombstones(id);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS world_heads(world TEXT PRIMARY KEY, seq INTEGER NOT NULL,
  chain BLOB NOT NULL, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine_log(n INTEGER PRIMARY KEY, seq INTEGER NOT NULL,
  reason TEXT, rec_us INTEGER NOT NULL);
{FTS_VOCAB};
"""

_TOKENIZE = "tokenize='porter unicode61 remove_diacritics 2'"

# Each atom's index text. ``atoms.text`` is NULL when the payload is exactly ``{"text":"..."}``
# or ``{"text": "..."}`` and the text needs no escape in JSON (see :func:`kept_text`): the text
# is then the payload less its first 9 or 10 and last 2 characters, which this view cuts out.
# SQLite's substr() and length() count characters of TEXT as Python counts a str's.
TEXT_EXPR = (
    "CASE WHEN text IS NOT NULL THEN text "
    "WHEN substr(payload_json, 9, 1) = '\"' "
    "THEN substr(payload_json, 10, length(payload_json) - 11) "
    "ELSE substr(payload_json, 11, length(payload_json) - 12) END"
)
TEXT_VIEW = f"CREATE VIEW IF NOT EXISTS atoms_text(seq, text) AS SELECT seq, {TEXT_EXPR} FROM atoms"

# A plain store's text index reads the texts from the view (external content: FTS5 keeps only
# its inverted index and document sizes). An encrypted store indexes keyed tokens of the words,
# which no column holds, so its index keeps them itself (FTS5's own content table).
EXTERNAL_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text, content='atoms_text', "
    f"content_rowid='seq', {_TOKENIZE})"
)
OWN_FTS = f"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text, {_TOKENIZE})"


def schema(*, encrypted: bool) -> str:
    """The DDL of a new store (schema ``SCHEMA_VERSION``)."""
    text_index = OWN_FTS if encrypted else f"{TEXT_VIEW};\n{EXTERNAL_FTS}"
    return f"{_TABLES}{text_index};\n"


# kept_text() in SQL, for a schema 1 store's rows (see convert_text_layout)
_KEPT_TEXT_SQL = (
    "CASE WHEN text <> '' AND instr(text, '\"') = 0 AND instr(text, char(92)) = 0 AND "
    "(payload_json = '{\"text\":\"' || text || '\"}' OR "
    "payload_json = '{\"text\": \"' || text || '\"}') THEN NULL ELSE text END"
)
_ATOM_COLUMNS = (
    "seq, id, world, worker, kind, ts_us, rec_us, importance, payload_json, vector, flags, "
    "labels, links, text, quarantine, checksum, chain"
)


def convert_text_layout(conn: Any) -> None:
    """Give a plain schema 1 store schema 2's text layout, in one transaction of ``conn``
    (a connection in autocommit mode, holding the store alone: ``compact`` calls it).

    The atoms table is copied into one whose ``text`` may be NULL (SQLite cannot drop a NOT
    NULL constraint in place) with :func:`kept_text`'s rule in SQL, its indexes and trigger
    are made again, and the text index is made external-content and rebuilt from the texts.
    Seqs, ids, checksums and chains are copied as they are. The page size stays: it changes
    only when the file is rebuilt outside WAL mode, which other connections prevent.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        trigger = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='quarantine_held'"
        ).fetchone()
        conn.execute("DROP TABLE IF EXISTS fts_vocab")
        conn.execute("DROP TABLE IF EXISTS fts")
        conn.execute(ATOMS_TABLE.replace("atoms(", "atoms_v2(", 1))
        columns = _ATOM_COLUMNS.replace("text, quarantine", f"{_KEPT_TEXT_SQL}, quarantine")
        conn.execute(
            f"INSERT INTO atoms_v2({_ATOM_COLUMNS}) SELECT {columns} FROM atoms ORDER BY seq"
        )
        conn.execute("DROP TABLE atoms")
        conn.execute("ALTER TABLE atoms_v2 RENAME TO atoms")
        for ddl in ATOMS_INDEXES:
            conn.execute(ddl)
        if trigger is not None:
            conn.execute(QUARANTINE_LOG[1])
        conn.execute(TEXT_VIEW)
        conn.execute(EXTERNAL_FTS)
        conn.execute(FTS_VOCAB)
        conn.execute("INSERT INTO fts(fts) VALUES('rebuild')")
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def external_text(conn: Any) -> bool:
    """Whether the store behind ``conn`` has the external-content text index (schema 2,
    plain); schema 1 stores and encrypted stores have an index that keeps its own text."""
    row = conn.execute("SELECT sql FROM main.sqlite_master WHERE name='fts'").fetchone()
    return row is not None and "content='atoms_text'" in str(row[0])


def kept_text(payload_json: str, text: str) -> str | None:
    """What ``atoms.text`` holds in a plain schema 2 store: ``None`` when ``text`` can be cut out
    of ``payload_json`` exactly (see ``TEXT_EXPR``), else ``text`` itself."""
    if text and '"' not in text and "\\" not in text:
        head = len(payload_json) - len(text) - 2
        if (
            (
                (head == 9 and payload_json.startswith('{"text":"'))
                or (head == 10 and payload_json.startswith('{"text": "'))
            )
            and payload_json.endswith('"}')
            and payload_json[head:-2] == text
        ):
            return None
    return text


def derived_text(payload_json: str) -> str:
    """The text of an atom whose ``atoms.text`` is NULL (the inverse of :func:`kept_text`)."""
    return payload_json[9:-2] if payload_json[8:9] == '"' else payload_json[10:-2]


# Each world's chain head, kept outside the rows it covers: ``seq`` and ``chain`` of the
# world's last record and ``count``, every record (atoms and tombstones) ever appended to it.
# Written in the same transaction as the atoms; ``storage check`` compares it with the rows,
# so removing a world's newest atoms (which leaves a valid but shorter chain) is noticed.
HEADS_TABLE = (
    "CREATE TABLE IF NOT EXISTS world_heads(world TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
    "chain BLOB NOT NULL, count INTEGER NOT NULL)"
)
HEADS_BACKFILL = (
    "INSERT OR REPLACE INTO world_heads(world, seq, chain, count) "
    "SELECT world, max(seq), chain, count(*) FROM ("
    "SELECT world, seq, chain FROM atoms UNION ALL SELECT world, seq, chain FROM tombstones"
    ") GROUP BY world"
)

# Every append looks its ids up among the tombstones too (an id is never reused): without this
# index each append read every tombstone (a remember took 8.9 ms instead of 0.4 ms with 50,000
# deleted atoms). Stores made before it get it in their first append.
TOMBSTONES_ID_INDEX = "CREATE INDEX IF NOT EXISTS tombstones_id ON tombstones(id)"

# Every change of an atom's quarantine state, append-only: a held atom's reason is logged when
# it is stored, and each release or hold by ``set_quarantine`` (sqlite_check.log_quarantine).
# Schema 2 stores log a held atom from ``append`` itself; schema 1 stores keep the trigger
# below, which did it in SQL (a trigger program run for every row inserted made an append of
# an atom cost about 13 µs more, though few atoms are held). ``storage check`` compares each
# atom's state with its last entry, so an edit of the quarantine column behind the store's
# back is noticed.
QUARANTINE_LOG = (
    "CREATE TABLE IF NOT EXISTS quarantine_log(n INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
    "reason TEXT, rec_us INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS quarantine_held AFTER INSERT ON atoms "
    "WHEN NEW.quarantine IS NOT NULL BEGIN "
    "INSERT INTO quarantine_log(seq, reason, rec_us) VALUES(NEW.seq, NEW.quarantine, NEW.rec_us); "
    "END",
)

# The marker file a data dir keeps once it holds a store (see SQLiteStorage._open_file).
STORE_MARKER = "dwbase.store.json"

COLS = (
    "seq, id, world, worker, kind, ts_us, rec_us, importance, payload_json, vector, flags, "
    "labels, links, text, quarantine"
)


def json_strings(items: Sequence[str]) -> str:
    """``json.dumps(list(items), ensure_ascii=False)``, for the flags and labels columns."""
    return "[" + ", ".join(map(_encode_str, items)) + "]" if items else "[]"


def json_links(links: Sequence[Link]) -> str:
    """``json.dumps([[target, kind], ...], ensure_ascii=False)``, for the links column."""
    if not links:
        return "[]"
    return "[" + ", ".join(f"[{_encode_str(x.target)}, {_encode_str(x.kind)}]" for x in links) + "]"


def atom_tags(atom: Atom) -> list[str]:
    return ["l:" + x for x in atom.labels] + ["f:" + x for x in atom.flags]


def row_to_stored(row: Sequence[Any], cipher: RecordCipher | None = None) -> StoredAtom:
    """Decode an atom row; with ``cipher``, an encrypted row is opened first (a row whose
    subject key was erased raises :class:`~dwbase.storage.crypto.ErasedRecordError`)."""
    try:
        if cipher is not None:
            row = open_row(row, cipher)
        return _decode(row)
    except (ValueError, TypeError, OverflowError) as exc:
        # A damaged row: say so with the store's own error, not a JSON or struct error.
        raise StorageError(
            f"atom {row[1]!r} (seq {row[0]}) cannot be decoded ({exc}): the store is damaged; "
            "run `dwbase storage check`"
        ) from exc


def _decode(row: Sequence[Any]) -> StoredAtom:
    (
        seq,
        aid,
        world,
        worker,
        kind,
        ts_us,
        rec_us,
        importance,
        payload_json,
        vector,
        flags,
        labels,
        links,
        text,
        quarantine,
    ) = row
    atom = Atom(
        id=aid,
        world=world,
        worker=worker,
        kind=kind,
        timestamp=format_instant(ts_us),
        importance=importance,
        payload_json=payload_json,
        vector=vector_from_bytes(vector) if vector is not None else None,
        flags=tuple(json.loads(flags)),
        labels=tuple(json.loads(labels)),
        links=tuple(Link(t, k) for t, k in json.loads(links)),
        recorded_at=format_instant(rec_us),
    )
    return StoredAtom(
        atom=atom,
        seq=seq,
        ts_us=ts_us,
        recorded_us=rec_us,
        text=text if text is not None else derived_text(payload_json),
        quarantine=quarantine,
    )


def open_row(row: Sequence[Any], cipher: RecordCipher) -> tuple[Any, ...]:
    """An encrypted atom row with ``payload_json``, ``vector`` and ``text`` decrypted."""
    out = list(row)
    aid = row[1]
    if not (
        isinstance(row[8], bytes)
        and isinstance(row[13], bytes)
        and isinstance(row[9], bytes | None)
    ):
        # A plain value where ciphertext belongs was written behind the store's back.
        raise StorageError(
            f"atom {aid!r} (seq {row[0]}) is not encrypted in an encrypted store: it was "
            "altered; run `dwbase storage check`"
        )
    out[8] = cipher.open(row[8], aad(aid, "payload_json")).decode("utf-8")
    if row[9] is not None:
        out[9] = cipher.open(row[9], aad(aid, "vector"))
    out[13] = cipher.open(row[13], aad(aid, "text")).decode("utf-8")
    return tuple(out)


def fts_query(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)

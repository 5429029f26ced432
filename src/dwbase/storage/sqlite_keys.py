"""SQLite storage: key rotation and erasure by subject key for an encrypted store.

``KeyAdmin`` is a part of :class:`~dwbase.storage.sqlite.SQLiteStorage` (a mixin, like
``LexicalSearch``):

* :meth:`KeyAdmin.rotate_key` makes the new key current in one transaction (every writer, in
  any process, reads the current key inside its own write transaction, so nothing is written
  under the old key afterwards), re-wraps the subject keys, then re-encrypts the records in
  short transactions of ``batch`` atoms, so reads and writes go on between them, and finally
  forgets the old key. An interrupted rotation is finished by running it again.
* :meth:`KeyAdmin.erase_subject` destroys a subject's keys and removes the text and vector
  index rows of its atoms; the atoms stay in the hash chain as ciphertext nobody can open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..errors import InvalidInputError
from ..security.keys import check_key_id
from .crypto import (
    ENCRYPTION_META,
    SUBJECT_PREFIX,
    RecordCipher,
    aad,
    dump_state,
    envelope_key_id,
    iter_chunks,
    subject_id,
    world_subject,
)

Progress = Callable[[int, int], None]  # (atoms done, atoms in all)


class _Store(Protocol):
    _cipher: RecordCipher | None

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
    def _bump_generation(self, conn: sqlite3.Connection) -> None: ...
    def forget_caches(self) -> None: ...
    def _require_cipher(self) -> RecordCipher: ...


def _noop(done: int, total: int) -> None:
    del done, total


def _meta(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (ENCRYPTION_META,)).fetchone()
    return str(row[0]) if row else None


def _put_meta(conn: sqlite3.Connection, state: dict[str, Any]) -> str:
    raw = dump_state(state)
    conn.execute(
        "INSERT INTO meta(key, value) VALUES(?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (ENCRYPTION_META, raw),
    )
    return raw


def _reseal(cipher: RecordCipher, blob: Any, ad: bytes, to: str) -> Any:
    """``blob`` sealed under store key ``to`` (subject records and ``None`` stay as they are)."""
    if not isinstance(blob, bytes):
        return blob
    kid = envelope_key_id(blob)
    if kid == to or kid.startswith("s:"):
        return blob
    return cipher.seal(cipher.open(blob, ad), ad, to)


class KeyAdmin:
    """Encryption status, rotation and erasure (see the module docstring)."""

    def _require_cipher(self: _Store) -> RecordCipher:
        if self._cipher is None:
            raise InvalidInputError(
                "this store is not encrypted: create it with an encryption key "
                "(encryption_key=, or [node.storage] encryption_key)",
                field="encryption_key",
            )
        return self._cipher

    def encryption_status(self: _Store) -> dict[str, Any] | None:
        """``{"cipher", "key_id", "keys"}`` of an encrypted store, ``None`` for a plain one."""
        cipher = self._cipher
        if cipher is None:
            return None
        return {
            "cipher": "AES-256-GCM",
            "key_id": cipher.current,
            "keys": list(cipher.key_ids),
            "erasable_worlds": list(cipher.erasable_worlds),
        }

    def rotate_key(
        self: _Store, to: str, *, progress: Progress = _noop, batch: int = 500
    ) -> dict[str, Any]:
        """Re-encrypt every record under key ``to``; reads and writes go on meanwhile."""
        cipher = self._require_cipher()
        check_key_id(to)
        with self._tx() as conn:
            cipher.refresh(_meta(conn))
            state = cipher.state()
            if to not in state["keys"]:
                state["keys"][to] = cipher.wrap_index_key(to)  # a missing key fails here
            state["key_id"] = to
            raw = _put_meta(conn, state)
            top = int(conn.execute("SELECT coalesce(max(seq), 0) FROM atoms").fetchone()[0])
            total = int(conn.execute("SELECT count(*) FROM atoms").fetchone()[0])
        cipher.refresh(raw)
        rewrapped = cipher.rewrap_subjects()
        done = changed = 0
        progress(0, total)
        for lo, hi in iter_chunks(0, top, max(1, batch)):
            with self._tx() as conn:
                rows = conn.execute(
                    "SELECT seq, id, payload_json, vector, text FROM atoms "
                    "WHERE seq > ? AND seq <= ?",
                    (lo, hi),
                ).fetchall()
                updates = []
                for seq, aid, payload, vector, text in rows:
                    new = (
                        _reseal(cipher, payload, aad(aid, "payload_json"), to),
                        _reseal(cipher, vector, aad(aid, "vector"), to),
                        _reseal(cipher, text, aad(aid, "text"), to),
                    )
                    if new != (payload, vector, text):
                        updates.append((*new, seq))
                conn.executemany(
                    "UPDATE atoms SET payload_json=?, vector=?, text=? WHERE seq=?", updates
                )
                vectors = conn.execute(
                    "SELECT v.seq, v.data, a.id FROM vectors v JOIN atoms a ON a.seq=v.seq "
                    "WHERE v.seq > ? AND v.seq <= ?",
                    (lo, hi),
                ).fetchall()
                conn.executemany(
                    "UPDATE vectors SET data=? WHERE seq=?",
                    [
                        (new, seq)
                        for seq, data, aid in vectors
                        if (new := _reseal(cipher, data, aad(aid, "ivec"), to)) != data
                    ],
                )
            changed += len(updates)
            done += len(rows)
            progress(done, total)
        final: str | None = None
        with self._tx() as conn:
            cipher.refresh(_meta(conn))
            state = cipher.state()
            retired = sorted(k for k in state["keys"] if k != to)
            if state["key_id"] == to:  # not rotated again meanwhile
                state["keys"] = {to: state["keys"][to]}
                final = _put_meta(conn, state)
        cipher.refresh(final)
        return {
            "key_id": to,
            "atoms": done,
            "reencrypted": changed,
            "subject_keys_rewrapped": rewrapped,
            "retired_keys": retired,
        }

    def erase_subject(self: _Store, subject: str) -> dict[str, Any]:
        """Destroy ``subject``'s keys: its atoms become unreadable everywhere, backups too."""
        if not subject:
            raise InvalidInputError("give the subject to erase", field="subject")
        found = _erase(
            self,
            subject,
            "SELECT a.seq, a.payload_json FROM atoms a WHERE a.seq IN "
            "(SELECT seq FROM tags WHERE tag=?)",
            "l:" + SUBJECT_PREFIX + subject,
        )
        return {"subject": subject, **found}

    def erase_world(self: _Store, world: str) -> dict[str, Any]:
        """Destroy the key of an erasable world (see :meth:`add_erasable_worlds`): the atoms
        written to it since it became erasable can no longer be read; ``not_erasable`` counts
        its atoms under the store key (written before), which stay readable."""
        if not world:
            raise InvalidInputError("give the world to erase", field="world")
        found = _erase(
            self,
            world_subject(world),
            "SELECT a.seq, a.payload_json FROM atoms a WHERE a.world=?",
            world,
        )
        return {"world": world, **found}

    def add_erasable_worlds(self: _Store, patterns: Sequence[str]) -> list[str]:
        """From now on, atoms written to worlds matching ``patterns`` (``demo``, ``tenant:a/*``)
        and carrying no ``subject:`` label are sealed under a key of their world's, so the
        whole world can be erased. Recorded in the store: every process follows it."""
        cipher = self._require_cipher()
        for p in patterns:
            if not isinstance(p, str) or not p or len(p) > 256:
                raise InvalidInputError(f"world pattern {p!r} is not valid", field="world")
        with self._tx() as conn:
            cipher.refresh(_meta(conn))
            state = cipher.state()
            state["erasable_worlds"] = sorted({*state.get("erasable_worlds", ()), *patterns})
            raw = _put_meta(conn, state)
        cipher.refresh(raw)
        return list(cipher.erasable_worlds)


def _erase(store: _Store, subject: str, select: str, param: str) -> dict[str, Any]:
    """Destroy ``subject``'s key files, then remove the text, vector and link index rows of
    the atoms ``select`` finds that were sealed under them."""
    cipher = store._require_cipher()
    prefix = f"s:{subject_id(subject)}-"
    keys = cipher.erase_subject(subject)
    kept = 0
    with store._tx() as conn:
        conn.execute("PRAGMA secure_delete=ON")  # freed index pages are zeroed
        try:
            seqs: list[int] = []
            for seq, payload in conn.execute(select, (param,)):
                if isinstance(payload, bytes) and envelope_key_id(payload).startswith(prefix):
                    seqs.append(int(seq))
                else:
                    kept += 1
            for chunk in _chunks(seqs, 500):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM fts WHERE rowid IN ({marks})", chunk)
                conn.execute(f"DELETE FROM vectors WHERE seq IN ({marks})", chunk)
                # its links no longer move other atoms' ranks either
                conn.execute(f"DELETE FROM links WHERE seq IN ({marks})", chunk)
            store._bump_generation(conn)
        finally:
            conn.execute("PRAGMA secure_delete=OFF")
    store.forget_caches()
    return {"keys_destroyed": keys, "atoms": len(seqs), "not_erasable": kept}


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

"""The MAC of an encrypted store's backup manifest.

A manifest's SHA-256 checksums catch damage, not an attacker: whoever rewrites a file can
recompute them. The backup of an encrypted store therefore carries ``encryption`` (the cipher
and the store key id) and ``mac``: HMAC-SHA256 over the canonical JSON of the rest of the
manifest (which holds every file's checksum), under a key derived from the store key. A
restore or verify of a store that is encrypted refuses a manifest without a valid MAC, so a
rewritten backup, or one whose MAC was stripped, is refused before it is used.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, StorageError
from ..security.keys import KeyProvider, default_key_provider
from ..storage.crypto import ENCRYPTION_META, KEYS_DIR, RecordCipher


def _cipher(db_path: Path, provider: KeyProvider | None) -> RecordCipher | None:
    """The cipher of the store snapshot at ``db_path`` (``None``: not encrypted)."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (ENCRYPTION_META,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the snapshot's metadata: {exc}") from exc
    if row is None:
        return None
    return RecordCipher(
        provider or default_key_provider(), json.loads(row[0]), db_path.parent / KEYS_DIR
    )


def _mac(key: bytes, manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "mac"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, text.encode("ascii"), "sha256").hexdigest()


def seal_manifest(manifest: dict[str, Any], db_path: Path, provider: KeyProvider | None) -> None:
    """Add ``encryption`` and ``mac`` to the manifest of an encrypted store's snapshot."""
    cipher = _cipher(db_path, provider)
    if cipher is None:
        return
    manifest["encryption"] = {"cipher": "AES-256-GCM", "key_id": cipher.current}
    manifest["mac"] = _mac(cipher.mac_key(cipher.current), manifest)


def verify_manifest(
    archive: Path, manifest: dict[str, Any], db_path: Path, provider: KeyProvider | None
) -> None:
    """Refuse the backup of an encrypted store unless its manifest's MAC verifies."""
    cipher = _cipher(db_path, provider)
    if cipher is None:
        return
    enc = manifest.get("encryption")
    mac = manifest.get("mac")
    key_id = enc.get("key_id") if isinstance(enc, dict) else None
    if not isinstance(mac, str) or not isinstance(key_id, str):
        raise InvalidInputError(
            f"backup {archive} holds an encrypted store but its manifest has no MAC: it was "
            "altered; use another backup",
            path=str(archive),
        )
    if key_id not in cipher.key_ids or not hmac.compare_digest(
        _mac(cipher.mac_key(key_id), manifest), mac
    ):
        raise InvalidInputError(
            f"backup {archive}: the manifest's MAC does not verify under key {key_id!r}: the "
            "backup was altered (or made by another store); use another backup",
            path=str(archive),
        )

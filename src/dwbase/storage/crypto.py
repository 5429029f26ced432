"""Encryption at rest: AES-256-GCM records, keyed index tokens and subject keys.

What one encrypted SQLite store holds (docs/security.md has the threat model):

* every atom's ``payload_json``, ``text`` and ``vector`` column, and its index vector, is an
  *envelope*: ``0x01 | len(key id) | key id | 12-byte nonce | AES-256-GCM ciphertext+tag``,
  with the atom id and the column name as associated data (a ciphertext cannot be moved to
  another atom or column);
* the text index (FTS5) holds, for each word, ``h<hex>x``: the first 64 bits of
  HMAC-SHA256(index key, stem(word)) — BM25 ranks exactly as over the words, and no word is
  stored;
* the ``meta`` row ``encryption`` (JSON): the cipher, the current key id and, for every key id
  records may be under, the index key wrapped (AES-GCM) under that key. Unwrapping it at open
  is the key check: a wrong key fails there, never later as garbage;
* an atom labelled ``subject:<S>`` is encrypted under a random key of its own for ``S``, kept
  wrapped under the store key in ``<data_dir>/keys/<sid>-<gen>.key`` (never in the store or a
  backup). Erasing ``S`` deletes those files: its atoms can no longer be read anywhere
  (crypto-shredding).

``cryptography`` is imported only here, and only when an encrypted store is opened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import EncryptionKeyError, StorageError
from ..model import Atom
from ..security.caps import world_matches
from ..security.keys import KEY_BYTES, KeyProvider, check_key_id
from ..text import stem, words

log = logging.getLogger("dwbase.storage.crypto")

ENCRYPTION_META = "encryption"
CIPHER_NAME = "AES-256-GCM"
SUBJECT_PREFIX = "subject:"
KEYS_DIR = "keys"
_VERSION = 1
_INDEX_AAD = b"dwbase index key v1"
_SUBJECT_AAD = b"dwbase subject key v1 "
_TOKEN_BYTES = 8
_SUBJECT_KID = re.compile(r"^s:[0-9a-f]{32}-[0-9a-f]{16}$")


class ErasedRecordError(StorageError):
    """A record under a subject key that was erased: it is gone, not damaged."""

    code = "erased"


def _aead() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - the encrypt extra is installed in tests
        raise StorageError(
            "this store is encrypted and the encrypt extra is not installed: "
            "pip install 'dwbase[encrypt]'"
        ) from exc
    return AESGCM


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


def world_subject(world: str) -> str:
    """The subject whose key an erasable world's atoms are sealed under (a label cannot hold
    the NUL, so no ``subject:`` label shares it)."""
    return "\0world\0" + world


def subject_id(subject: str) -> str:
    """The file-name-safe id of a subject (the subject itself is not written in key files)."""
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]


def atom_subject(atom: Atom) -> str | None:
    """The subject an atom belongs to: its first ``subject:<S>`` label, if any."""
    for label in atom.labels:
        if label.startswith(SUBJECT_PREFIX) and len(label) > len(SUBJECT_PREFIX):
            return label[len(SUBJECT_PREFIX) :]
    return None


def envelope_key_id(blob: bytes) -> str:
    """The key id an envelope was sealed with."""
    if len(blob) < 2 or blob[0] != _VERSION:
        raise StorageError("not an encrypted record (unknown envelope)")
    return blob[2 : 2 + blob[1]].decode("ascii")


class RecordCipher:
    """Seals and opens one store's records. Thread-safe; built by :func:`open_cipher`."""

    def __init__(self, provider: KeyProvider, state: dict[str, Any], keys_dir: Path) -> None:
        self.provider = provider
        self.keys_dir = keys_dir
        self._lock = threading.Lock()
        self._aeads: dict[str, Any] = {}
        self._subject_keys: dict[str, Any] = {}
        self._tokens: dict[str, str] = {}
        self.raw = ""
        self.current = ""
        self.key_ids: tuple[str, ...] = ()
        self.erasable_worlds: tuple[str, ...] = ()
        self._index_key = b""
        self._checksum_key: bytes | None = None
        self._load(state)

    # ------------------------------------------------------------------ keys

    def _master(self, key_id: str) -> Any:
        aead = self._aeads.get(key_id)
        if aead is None:
            key = self.provider.key(key_id)
            if key is None:
                raise EncryptionKeyError(
                    f"encryption key {key_id!r} is not available (looked in "
                    f"{self.provider.where(key_id)}); set it to the key's 64 hex digits",
                    key_id=key_id,
                    reason="missing",
                )
            aead = _aead()(key)
            self._aeads[key_id] = aead
        return aead

    def _load(self, state: dict[str, Any]) -> None:
        """Check every key the store lists against its wrapped index key."""
        if state.get("cipher") != CIPHER_NAME or not isinstance(state.get("keys"), dict):
            raise StorageError(f"the store's encryption metadata is not understood: {state!r}")
        index_key: bytes | None = None
        for key_id, wrapped in sorted(state["keys"].items()):
            blob = base64.b64decode(wrapped)
            try:
                got = self._master(key_id).decrypt(blob[:12], blob[12:], _INDEX_AAD)
            except _invalid_tag() as exc:
                raise EncryptionKeyError(
                    f"encryption key {key_id!r} (from {self.provider.where(key_id)}) is not the "
                    "key this store was encrypted with: nothing was read; give the right key",
                    key_id=key_id,
                    reason="wrong",
                ) from exc
            if index_key is not None and got != index_key:
                raise StorageError("the store's wrapped index keys disagree: it is damaged")
            index_key = got
        if index_key is None or state.get("key_id") not in state["keys"]:
            raise StorageError(f"the store's encryption metadata is not understood: {state!r}")
        self._index_key = index_key
        self.current = str(state["key_id"])
        self.key_ids = tuple(sorted(state["keys"]))
        self.erasable_worlds = tuple(str(p) for p in state.get("erasable_worlds", ()))
        self.raw = dump_state(state)

    def refresh(self, raw: str | None) -> None:
        """Take the ``encryption`` meta row as another writer (a rotation) left it."""
        if raw is not None and raw != self.raw:
            with self._lock:
                if raw != self.raw:
                    self._load(json.loads(raw))

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.raw)
        return data

    def wrap_index_key(self, key_id: str) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(
            nonce + self._master(key_id).encrypt(nonce, self._index_key, _INDEX_AAD)
        ).decode("ascii")

    def keyed_checksum(self, checksum: bytes) -> bytes:
        """A record's checksum as an encrypted store keeps it: HMAC-SHA256 of the plain
        SHA-256 under a key derived from the index key, so the file cannot confirm a guess."""
        key = self._checksum_key
        if key is None:
            key = self._checksum_key = hmac.digest(
                self._index_key, b"dwbase record checksum v1", "sha256"
            )
        out: bytes = hmac.digest(key, checksum, "sha256")
        return out

    def mac_key(self, key_id: str) -> bytes:
        """A key for MACs (backup manifests) bound to store key ``key_id``."""
        wrapped = self.state()["keys"].get(key_id)
        if wrapped is None:
            raise EncryptionKeyError(
                f"key {key_id!r} is not a key of this store", key_id=key_id, reason="wrong"
            )
        self._master(key_id)
        return hmac.digest(self._index_key, b"dwbase backup mac v1 " + key_id.encode(), "sha256")

    # ------------------------------------------------------------------ subject keys

    def _subject_file(self, kid: str) -> Path:
        if not _SUBJECT_KID.match(kid):  # a record names its key: never a path elsewhere
            raise StorageError(f"a record names a subject key {kid!r} no DWBase writes")
        return self.keys_dir / f"{kid[2:]}.key"

    def _read_subject(self, kid: str) -> Any | None:
        path = self._subject_file(kid)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StorageError(f"subject key file {path} cannot be read ({exc})") from exc
        blob = bytes.fromhex(data["wrapped"])
        try:
            key = self._master(data["key_id"]).decrypt(
                blob[:12], blob[12:], _SUBJECT_AAD + kid.encode()
            )
        except _invalid_tag() as exc:
            raise StorageError(f"subject key file {path} does not open: it is damaged") from exc
        return _aead()(key)

    def _write_subject(self, kid: str, key: bytes, *, replace: bool) -> None:
        nonce = os.urandom(12)
        wrapped = nonce + self._master(self.current).encrypt(
            nonce, key, _SUBJECT_AAD + kid.encode()
        )
        body = json.dumps({"key_id": self.current, "wrapped": wrapped.hex()}) + "\n"
        path = self._subject_file(kid)
        self.keys_dir.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(f".tmp{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if another process made this key first
            finally:
                tmp.unlink()

    def _subject_aead(self, kid: str) -> Any | None:
        """The key of a subject record, or ``None`` once the subject was erased."""
        if not self._subject_file(kid).exists():
            self._subject_keys.pop(kid, None)
            return None
        aead = self._subject_keys.get(kid)
        if aead is None:
            aead = self._read_subject(kid)
            if aead is not None:
                self._subject_keys[kid] = aead
        return aead

    def _subject_kid(self, subject: str) -> str:
        """The key id new atoms of ``subject`` are sealed under (made on first use)."""
        sid = subject_id(subject)
        existing = sorted(self.keys_dir.glob(f"{sid}-*.key")) if self.keys_dir.is_dir() else []
        if existing:
            return "s:" + existing[0].stem
        kid = f"s:{sid}-{secrets.token_hex(8)}"
        # Two processes may each make one at once: both keys are the subject's, and erasure
        # destroys every ``<sid>-*.key``.
        self._write_subject(kid, secrets.token_bytes(KEY_BYTES), replace=False)
        return kid

    def erase_subject(self, subject: str) -> int:
        """Destroy every key of ``subject``; returns how many key files were removed."""
        sid = subject_id(subject)
        n = 0
        if self.keys_dir.is_dir():
            for path in self.keys_dir.glob(f"{sid}-*.key"):
                size = path.stat().st_size
                with path.open("r+b") as fh:  # overwrite first: less left on the disk
                    fh.write(b"\0" * size)
                    fh.flush()
                    os.fsync(fh.fileno())
                path.unlink()
                self._subject_keys.pop("s:" + path.stem, None)
                n += 1
        return n

    def rewrap_subjects(self) -> int:
        """Wrap every subject key under the current store key (a rotation's last step)."""
        n = 0
        if self.keys_dir.is_dir():
            for path in sorted(self.keys_dir.glob("*.key")):
                kid = "s:" + path.stem
                aead = self._read_subject(kid)
                if aead is None:
                    continue
                data = json.loads(path.read_text(encoding="utf-8"))
                if data["key_id"] == self.current:
                    continue
                blob = bytes.fromhex(data["wrapped"])
                key = self._master(data["key_id"]).decrypt(
                    blob[:12], blob[12:], _SUBJECT_AAD + kid.encode()
                )
                self._write_subject(kid, key, replace=True)
                n += 1
        return n

    def subject_key_ids(self) -> set[str]:
        """The store keys that subject key files are wrapped under."""
        out: set[str] = set()
        if self.keys_dir.is_dir():
            for path in self.keys_dir.glob("*.key"):
                out.add(str(json.loads(path.read_text(encoding="utf-8"))["key_id"]))
        return out

    # ------------------------------------------------------------------ records

    def key_for(self, atom: Atom) -> str:
        """The key id a new record of ``atom`` is sealed under: its subject's key, else its
        world's key when the world is erasable, else the store key."""
        subject = atom_subject(atom)
        if (
            subject is None
            and self.erasable_worlds
            and world_matches(atom.world, self.erasable_worlds)
        ):
            subject = world_subject(atom.world)
        return self._subject_kid(subject) if subject is not None else self.current

    def seal(self, data: bytes, aad: bytes, key_id: str) -> bytes:
        if key_id.startswith("s:"):
            aead = self._subject_aead(key_id)
            if aead is None:
                raise StorageError("the subject was erased while this write was under way")
        else:
            aead = self._master(key_id)
        nonce = os.urandom(12)
        kid = key_id.encode("ascii")
        sealed: bytes = aead.encrypt(nonce, data, aad)
        return bytes((_VERSION, len(kid))) + kid + nonce + sealed

    def open(self, blob: bytes, aad: bytes) -> bytes:
        key_id = envelope_key_id(blob)
        start = 2 + blob[1]
        if key_id.startswith("s:"):
            aead = self._subject_aead(key_id)
            if aead is None:
                raise ErasedRecordError("the record's subject key was erased", key_id=key_id)
        else:
            aead = self._master(key_id)
        try:
            plain: bytes = aead.decrypt(blob[start : start + 12], blob[start + 12 :], aad)
        except _invalid_tag() as exc:
            raise StorageError(
                f"a record does not decrypt under key {key_id!r}: it was altered, or the key "
                "is not the one it was written with; run `dwbase storage check`"
            ) from exc
        return plain

    # ------------------------------------------------------------------ index tokens

    def _token(self, word: str) -> str:
        """``h<hex>x`` for a stemmed word: 64 bits of its HMAC under the index key."""
        digest: bytes = hmac.digest(self._index_key, word.encode("utf-8"), "sha256")
        return "h" + digest[:_TOKEN_BYTES].hex() + "x"

    def _word_tokens(self, word: str) -> str:
        """The tokens of one word of :func:`dwbase.text.words` (cached: most words repeat)."""
        tok = self._tokens.get(word)
        if tok is None:
            tok = " ".join(self._token(stem(p)) for p in word.split("'") if p)
            if len(self._tokens) > 200_000:
                self._tokens.clear()
            self._tokens[word] = tok
        return tok

    def index_text(self, text: str) -> str:
        """What the text index holds for ``text``: keyed tokens of its words, in order."""
        get = self._tokens.get
        out = [get(w) or self._word_tokens(w) for w in words(text)]
        return " ".join(t for t in out if t)

    def query_tokens(self, terms: Sequence[str]) -> list[str]:
        """The index tokens of a question's terms (each term one token)."""
        out = []
        for term in terms:
            for w in words(term):
                tok = self._word_tokens(w).split(" ")[0]
                if tok:
                    out.append(tok)
                break
        return list(dict.fromkeys(out))


def dump_state(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def new_state(provider: KeyProvider, key_id: str) -> dict[str, Any]:
    """The ``encryption`` meta of a new store: a fresh index key wrapped under ``key_id``."""
    check_key_id(key_id)
    key = provider.key(key_id)
    if key is None:
        raise EncryptionKeyError(
            f"encryption key {key_id!r} is not available (looked in {provider.where(key_id)}); "
            "set it to 64 hex digits to create an encrypted store",
            key_id=key_id,
            reason="missing",
        )
    nonce = os.urandom(12)
    wrapped = nonce + _aead()(key).encrypt(nonce, secrets.token_bytes(KEY_BYTES), _INDEX_AAD)
    return {
        "cipher": CIPHER_NAME,
        "version": _VERSION,
        "key_id": key_id,
        "keys": {key_id: base64.b64encode(wrapped).decode("ascii")},
    }


def open_cipher(
    provider: KeyProvider, raw: str | None, wanted: str | None, keys_dir: Path, where: str
) -> RecordCipher | None:
    """The cipher of a store whose ``encryption`` meta is ``raw`` (``None``: not encrypted).

    ``wanted`` is the key id the caller asked for: a plain store is refused then (it would
    stay plain text), and an encrypted one must list that key.
    """
    if raw is None:
        if wanted is not None:
            raise EncryptionKeyError(
                f"the store at {where} is not encrypted, but encryption key {wanted!r} was "
                "asked for; an existing plain store cannot be encrypted in place: open it "
                "without encryption, or create a new encrypted store",
                key_id=wanted,
                reason="plain_store",
            )
        return None
    cipher = RecordCipher(provider, json.loads(raw), keys_dir)
    if wanted is not None and wanted not in cipher.key_ids:
        raise EncryptionKeyError(
            f"the store at {where} is encrypted under {', '.join(cipher.key_ids)}, not "
            f"{wanted!r}; give that key id (or rotate with `dwbase storage rotate-key`)",
            key_id=wanted,
            reason="wrong",
        )
    return cipher


def aad(atom_id: str, column: str) -> bytes:
    return f"{atom_id}\0{column}".encode()


def iter_chunks(lo: int, hi: int, size: int) -> Iterable[tuple[int, int]]:
    while lo < hi:
        yield lo, min(hi, lo + size)
        lo += size


Progress = Callable[[int, int], None]

"""A node's identity: an Ed25519 key kept in its data directory, and the id derived from it.

The key is made on first start as ``<data_dir>/swarm.key`` (PEM, mode 0600) and never leaves
the directory; the node id is the first 16 hex digits of the SHA-256 of the public key, so an
id cannot be claimed without the key. Peers are known by their public keys (base64 of the 32
raw bytes), given in configuration.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> me = load_or_create(d)
>>> me.node_id == node_id_for(me.public_b64) and load_or_create(d).node_id == me.node_id
True
>>> verify(me.public_b64, b"hello", me.sign(b"hello"))
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import InvalidInputError

KEY_FILE = "swarm.key"


def node_id_for(public_b64: str) -> str:
    """The node id that belongs to a public key (base64 of its 32 raw bytes)."""
    return hashlib.sha256(decode_public(public_b64)).hexdigest()[:16]


def decode_public(public_b64: str) -> bytes:
    try:
        raw = base64.b64decode(public_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidInputError(
            f"peer key {public_b64!r} is not a base64 Ed25519 public key (32 bytes)",
            field="swarm.peers",
        )
    return raw


@dataclass(frozen=True, slots=True)
class Identity:
    node_id: str
    public_b64: str
    _private: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)


def _public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_or_create(data_dir: str) -> Identity:
    """The node's identity from ``<data_dir>/swarm.key``, made (0600) if it is not there."""
    path = os.path.join(data_dir, KEY_FILE)
    os.makedirs(data_dir, exist_ok=True)
    try:
        with open(path, "rb") as fh:
            pem = fh.read()
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        with open(path, "rb") as fh:
            pem = fh.read()
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InvalidInputError(f"{path} does not hold an Ed25519 private key", field="swarm")
    public = _public_b64(loaded)
    return Identity(node_id_for(public), public, loaded)


def verify(public_b64: str, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(decode_public(public_b64)).verify(signature, data)
    except (InvalidSignature, InvalidInputError, ValueError):
        return False
    return True

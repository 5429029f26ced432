"""Key providers: where the 256-bit keys of an encrypted store come from.

A key has an id (``k1``, ``2026-q4``); the store records which id encrypted each record, so
keys rotate (``dwbase storage rotate-key --to NEW``) and an old key can be removed once no
record needs it. Keys never live in the store or in its backups.

* :class:`EnvKeyProvider` — ``DWBASE_KEY_<ID>`` holds the key as 64 hex digits (the id
  upper-cased, every character other than a letter or digit written ``_``);
* :class:`KeyFileProvider` — a directory of ``<id>.key`` files, each 64 hex digits;
* :func:`default_key_provider` — the environment, then ``DWBASE_KEY_DIR`` when it is set.

>>> p = EnvKeyProvider({"DWBASE_KEY_K1": "00" * 32})
>>> len(p.key("k1") or b""), p.key("k2")
(32, None)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ..errors import EncryptionKeyError, InvalidInputError

KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_key_id(key_id: str) -> str:
    """A key id is 1-64 letters, digits, ``.``, ``_`` or ``-`` (it names a file and a variable),
    and not ``dir``."""
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id) or key_id.lower() == "dir":
        # ("dir" would be read from DWBASE_KEY_DIR, the key directory's variable)
        raise InvalidInputError(
            f"key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)",
            field="key_id",
        )
    return key_id


def env_name(key_id: str) -> str:
    """The environment variable that holds key ``key_id``: ``DWBASE_KEY_<ID>``."""
    return "DWBASE_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", key_id).upper()


def parse_key(text: str, key_id: str, where: str) -> bytes:
    """64 hex digits (surrounding white space allowed) as 32 bytes, or a clear error."""
    value = text.strip()
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise EncryptionKeyError(
            f"key {key_id!r} in {where} is not a 256-bit key: give 64 hex digits "
            "(make one with `python -c 'import secrets; print(secrets.token_hex(32))'`)",
            key_id=key_id,
            reason="invalid",
        )
    return key


class KeyProvider(Protocol):
    """Gives the key bytes for an id, or ``None`` when it has no such key."""

    def key(self, key_id: str) -> bytes | None: ...

    def where(self, key_id: str) -> str:
        """Where this provider looks for ``key_id`` (for error messages)."""
        ...


class EnvKeyProvider:
    """Keys from environment variables ``DWBASE_KEY_<ID>`` (hex)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def key(self, key_id: str) -> bytes | None:
        name = env_name(key_id)
        value = self._environ.get(name)
        return None if value is None else parse_key(value, key_id, name)

    def where(self, key_id: str) -> str:
        return f"environment variable {env_name(key_id)}"


class KeyFileProvider:
    """Keys from ``<directory>/<id>.key`` files (hex), e.g. a mounted secret volume."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def key(self, key_id: str) -> bytes | None:
        path = self.directory / f"{check_key_id(key_id)}.key"
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise EncryptionKeyError(
                f"key file {path} cannot be read ({exc})", key_id=key_id, reason="invalid"
            ) from exc
        return parse_key(text, key_id, str(path))

    def where(self, key_id: str) -> str:
        return f"key file {self.directory / (key_id + '.key')}"


class ChainedKeyProvider:
    """The first provider that has the key wins."""

    def __init__(self, *providers: KeyProvider) -> None:
        self.providers = providers

    def key(self, key_id: str) -> bytes | None:
        for provider in self.providers:
            found = provider.key(key_id)
            if found is not None:
                return found
        return None

    def where(self, key_id: str) -> str:
        return " or ".join(p.where(key_id) for p in self.providers)


def default_key_provider(key_dir: str | os.PathLike[str] | None = None) -> KeyProvider:
    """``DWBASE_KEY_<ID>`` variables, then the key files of ``key_dir`` (or ``DWBASE_KEY_DIR``)."""
    directory = key_dir or os.environ.get("DWBASE_KEY_DIR") or None
    env = EnvKeyProvider()
    return ChainedKeyProvider(env, KeyFileProvider(directory)) if directory else env

"""The original DWBase node's config keys, read with a warning that names today's key.

The original's ``config.example.toml`` uses keys this node spells otherwise. A key with the
same meaning here is taken, converted where its unit differs, with a warning naming the new
key. A key whose value would change what callers may do, or promise something this version
cannot keep, is refused with an error that says what to use instead:

========================================  ==================================================
original key under ``[node]``              here
========================================  ==================================================
``embedder = "dummy"``                     ``embedder = "hashing"`` (the model-free embedder)
``security.remember_per_sec = N``          ``auth.remember_rate = N`` (atoms/s per caller)
``security.ask_per_min = N``               ``auth.ask_rate = N / 60`` (asks/s per caller)
``security.read_worlds`` / ``write_worlds`` ``[]`` (every world, as in the original): ignored;
                                           a list of worlds: refused (use tokens)
``security.importance_cap``                ``1.0`` (no cap): ignored; lower: refused (tokens)
``storage.encryption_enabled = true``      ``storage.encryption_key = <key_id>`` (AES-256-GCM
+ ``storage.key_id``                       at rest, docs/security.md); ``false``: ignored
``storage.key_id``                         ignored without ``encryption_enabled = true``
``health.disk_usage_degraded = F``         ``health.disk_degraded_pct = F * 100``
``health.index_rebuild_warn_seconds``      ignored (``index_ok`` reports any rebuild)
========================================  ==================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidInputError

log = logging.getLogger("dwbase.config")

_TOKENS_HINT = (
    "this node restricts callers with tokens: dwbase --data-dir DIR token create NAME "
    "--read PATTERN --write PATTERN (docs/security.md)"
)


def _number(key: str, value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidInputError(f"{where}: node.{key} must be a number, got {value!r}", field=key)


def translate_original(flat: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """Map the original DWBase's keys in ``flat`` (dotted keys under ``[node]``) to today's.

    Returns the settings to use and the warnings given (each also logged).

    >>> values, notes = translate_original({"security.ask_per_min": 60}, "config.toml")
    >>> values, notes[0].split(";")[0]
    ({'auth.ask_rate': 1.0}, "config.toml: node.security.ask_per_min is the original DWBase's key")
    """
    out: dict[str, Any] = {}
    notes: list[str] = []

    def warn(key: str, message: str) -> None:
        note = f"{where}: node.{key} is the original DWBase's key; {message}"
        notes.append(note)
        log.warning(note)

    def refuse(key: str, message: str) -> None:
        raise InvalidInputError(
            f"{where}: node.{key} (the original DWBase's key): {message}", field=key
        )

    def rename(new: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[str, Any], None]:
        def apply(key: str, value: Any) -> None:
            converted = convert(value)
            if new in flat:
                refuse(key, f"give only node.{new}, the key this version reads")
            out[new] = converted
            warn(key, f"read as {new} = {converted!r}: write that instead")

        return apply

    def worlds(key: str, value: Any) -> None:
        if value in ([], ()):
            warn(
                key, "an empty list (every world) is what this node does without tokens: remove it"
            )
        else:
            refuse(key, f"world lists are not node settings here; {_TOKENS_HINT}")

    def importance_cap(key: str, value: Any) -> None:
        if _number(key, value, where) >= 1.0:
            warn(key, "1.0 (no cap) is the default here: remove it")
        else:
            refuse(key, f"a node-wide cap is not a setting here; {_TOKENS_HINT} --importance-cap F")

    def _enabled(value: Any) -> bool:
        return not (
            value is False
            or value is None
            or (isinstance(value, str) and value.lower() in ("false", "0", "no", "off", ""))
        )

    def encryption(key: str, value: Any) -> None:
        if not _enabled(value):
            warn(key, "false (no encryption) is the default: remove it")
            return
        key_id = flat.get("storage.key_id")
        if not isinstance(key_id, str) or not key_id:
            refuse(
                key,
                'encryption needs the key\'s id: give node.storage.encryption_key = "<id>" '
                "(the key itself in DWBASE_KEY_<ID>, 64 hex digits)",
            )
        if "storage.encryption_key" in flat:
            refuse(key, "give only node.storage.encryption_key, the key this version reads")
        out["storage.encryption_key"] = key_id
        warn(
            key,
            f"with key_id, read as storage.encryption_key = {key_id!r}: write that instead "
            f"(the key itself: DWBASE_KEY_<ID>, 64 hex digits)",
        )

    def key_id(key: str, value: Any) -> None:
        if not _enabled(flat.get("storage.encryption_enabled", False)):
            warn(key, "ignored: encryption_enabled is not true")

    def ignored(reason: str) -> Callable[[str, Any], None]:
        return lambda key, value: warn(key, f"ignored: {reason}")

    def embedder(key: str, value: Any) -> None:
        if value == "dummy":
            out["embedder"] = "hashing"
            warn(key, 'embedder "dummy" is read as "hashing" (no model needed): write that instead')
        else:
            out[key] = value

    handlers: dict[str, Callable[[str, Any], None]] = {
        "embedder": embedder,
        "security.remember_per_sec": rename("auth.remember_rate", lambda v: v),
        "security.ask_per_min": rename(
            "auth.ask_rate", lambda v: _number("security.ask_per_min", v, where) / 60
        ),
        "security.read_worlds": worlds,
        "security.write_worlds": worlds,
        "security.importance_cap": importance_cap,
        "storage.encryption_enabled": encryption,
        "storage.key_id": key_id,
        "health.disk_usage_degraded": rename(
            "health.disk_degraded_pct",
            lambda v: _number("health.disk_usage_degraded", v, where) * 100,
        ),
        "health.index_rebuild_warn_seconds": ignored(
            "index_ok and index_rebuild_lag_ms in /health report any rebuild"
        ),
    }
    for key, value in flat.items():
        handler = handlers.get(key)
        if handler is None:
            out[key] = value
        else:
            handler(key, value)
    return out, notes

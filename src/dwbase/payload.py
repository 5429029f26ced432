"""Payloads: the JSON object an atom carries, checked and serialised once, and its text.

:func:`read_payload` takes either form a writer gives (``payload``, a mapping, or
``payload_json``, a string) and returns the stored JSON text, the parsed value, the text
DWBase indexes and whether every number in it is finite (what quarantine asks). A mapping
that holds only JSON's own types (``dict`` with string keys, ``list``, ``str``, ``int``,
``float``, ``bool``, ``None``) is serialised and walked once: parsing its JSON back would give
an equal value. Anything else (tuples, other key types, subclasses, deep nesting) is parsed
back from its JSON, so what is indexed and checked is always what is stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode_str  # what json.dumps escapes with
from typing import Any

from .errors import InvalidInputError, PayloadTooLargeError

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
# Objects and arrays nest at most this deep in a payload. Deeper JSON is refused as invalid
# input: every walker of a payload (quarantine, text extraction, encoders) stays far from
# Python's recursion limit, and no real record needs more.
MAX_PAYLOAD_DEPTH = 100
_WALK_DEPTH = 16  # deeper payloads take the general path (its depth check, its walkers)

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class Payload:
    json: str  # what is stored, byte for byte
    parsed: Any
    text: str  # payload_text(parsed)
    finite: bool  # True: known to hold no NaN or infinity (False: not checked, or holds one)


def is_utf8(value: str) -> bool:
    # Lone surrogates survive Python strings but not UTF-8 (SQLite, checksums, the wire).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def finite(value: Any) -> Any:
    """A parsed payload with NaN and infinities (which JSON lacks) as ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def _reject_constant(token: str) -> Any:
    # NaN/Infinity are not JSON; they are parsed so quarantine can see them (see quarantine.py).
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[token]


def parse_payload(
    payload_json: Any = None, payload: Any = None, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> tuple[str, Any]:
    """Return ``(payload_json, parsed)``; exactly one of the two forms may be given.

    ``parsed`` may be ``payload`` itself (see the module's docstring): read it, do not keep it.
    """
    p = read_payload(payload_json, payload, max_bytes=max_bytes)
    return p.json, p.parsed


def read_payload(
    payload_json: Any = None, payload: Any = None, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Payload:
    """The payload of a write, checked: see :func:`parse_payload` and the module's docstring."""
    if payload is not None and payload_json not in (None, ""):
        raise InvalidInputError("give payload_json or payload, not both", field="payload")
    flat = None
    if payload is not None:
        if not isinstance(payload, Mapping):
            raise InvalidInputError("payload must be a JSON object", field="payload")
        flat_parts: list[str] = []
        flat = _flat(payload, flat_parts)
    if flat is not None:
        text = flat
    elif payload is not None:
        try:
            text = _encode(payload)
        except RecursionError as exc:
            raise _too_deep("payload") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"payload is not JSON-serialisable: {exc}", field="payload"
            ) from exc
    elif payload_json is None or payload_json == "":
        text = "{}"
    elif isinstance(payload_json, str):
        text = payload_json
    else:
        raise InvalidInputError("payload_json must be a string holding JSON", field="payload_json")
    size = len(text)
    if not text.isascii():
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                "payload must be valid Unicode text (it holds an unpaired surrogate)",
                field="payload_json",
            ) from exc
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"payload is {size} bytes; the limit is {max_bytes}", size=size, limit=max_bytes
        )
    if flat is not None:  # valid UTF-8 (checked above): no string holds a lone surrogate
        return Payload(text, payload, " ".join(flat_parts), True)
    if payload is not None:
        parts: list[str] = []
        walked = _walk(payload, parts, 0)
        if walked is not None:
            return Payload(text, payload, " ".join(parts), walked)
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise _too_deep("payload_json") from exc
    except ValueError as exc:
        raise InvalidInputError(
            f"payload_json is not valid JSON: {exc}", field="payload_json"
        ) from exc
    # Fewer brackets than the limit cannot nest past it: most payloads skip the walk.
    if text.count("{") + text.count("[") > MAX_PAYLOAD_DEPTH and _depth(parsed) > MAX_PAYLOAD_DEPTH:
        raise _too_deep("payload_json")
    if _SURROGATE_ESCAPE_RE.search(text) and _has_lone_surrogate(parsed):
        raise InvalidInputError(
            "payload_json holds an unpaired surrogate escape (\\ud800-\\udfff); "
            "strings must be valid Unicode",
            field="payload_json",
        )
    parts = []
    walked = _walk(parsed, parts, 0)
    if walked is not None:
        return Payload(text, parsed, " ".join(parts), walked)
    return Payload(text, parsed, payload_text(parsed), False)


def _walk(value: Any, parts: list[str], depth: int) -> bool | None:
    """``payload_text``'s parts of a value of JSON's own types, appended to ``parts``, and
    whether its numbers are all finite; ``None`` for anything else, or nesting past
    ``_WALK_DEPTH`` (``parts`` is then partly filled: drop it)."""
    t = type(value)
    if t is str:
        parts.append(value)
        return True
    if t is dict:
        if depth >= _WALK_DEPTH:
            return None
        ok = True
        for k, v in value.items():
            if type(k) is not str:
                return None
            r = _walk(v, parts, depth + 1)
            if r is None:
                return None
            ok = ok and r
        return ok
    if t is list:
        if depth >= _WALK_DEPTH:
            return None
        ok = True
        for v in value:
            r = _walk(v, parts, depth + 1)
            if r is None:
                return None
            ok = ok and r
        return ok
    if t is int:
        parts.append(str(value))
        return True
    if t is float:
        parts.append(str(value))
        return math.isfinite(value)
    if t is bool or value is None:
        return True
    return None


def _flat(payload: Mapping[str, Any], parts: list[str]) -> str | None:
    """The JSON of a ``dict`` whose keys are strings and values strings, whole numbers,
    finite floats, booleans or ``None`` (most payloads), as ``json.dumps`` writes it, with
    its text parts appended to ``parts``; ``None`` for any other payload."""
    if type(payload) is not dict:
        return None
    out: list[str] = []
    enc = _encode_str
    for k, v in payload.items():
        t = type(v)
        if type(k) is not str:
            return None
        if t is str:
            parts.append(v)
            out.append(enc(k) + ":" + enc(v))
        elif t is int:
            s = int.__repr__(v)
            parts.append(s)
            out.append(enc(k) + ":" + s)
        elif t is float and math.isfinite(v):
            s = float.__repr__(v)
            parts.append(s)
            out.append(enc(k) + ":" + s)
        elif t is bool:
            out.append(enc(k) + (":true" if v else ":false"))
        elif v is None:
            out.append(enc(k) + ":null")
        else:
            return None
    return "{" + ",".join(out) + "}"


_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")


def _too_deep(field: str) -> InvalidInputError:
    return InvalidInputError(
        f"payload is nested too deeply: objects and arrays may nest at most "
        f"{MAX_PAYLOAD_DEPTH} levels",
        field=field,
        limit=MAX_PAYLOAD_DEPTH,
    )


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children: Iterable[Any] = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        d += 1
        if d > deepest:
            deepest = d
            if d > MAX_PAYLOAD_DEPTH:
                return d
        stack.extend((c, d) for c in children)
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return not is_utf8(value)
    if isinstance(value, Mapping):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def payload_text(parsed: Any) -> str:
    """The text DWBase indexes: every string (and number) in the payload, in document order."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, bool) or v is None:
            return
        elif isinstance(v, int | float):
            parts.append(str(v))
        elif isinstance(v, Mapping):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(parsed)
    return " ".join(parts)

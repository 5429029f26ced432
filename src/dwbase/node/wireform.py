"""The ``payload`` field of the atoms the node sends, for ``orjson``.

An atom on the wire carries ``payload_json`` (the stored text, the original's shape) and
``payload`` (the same JSON as an object). The node sends ``payload`` as the stored text itself
(an ``orjson.Fragment``: no parse, and exact for numbers a double cannot hold), unless the text
holds NaN or Infinity, which JSON lacks (quarantine keeps such atoms): those go as null.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..model import finite


def payload_fragment(payload_json: str) -> Any:
    """``payload`` for :meth:`dwbase.model.Atom.to_wire`, serialised by orjson."""
    text = payload_json
    if "NaN" in text or "Infinity" in text:  # maybe a bare token, maybe inside a string
        try:
            json.loads(text, parse_constant=_refuse)
        except ValueError:
            parsed = finite(json.loads(text))
            text = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    if "\n" in text or "\r" in text:  # outside strings only (JSON escapes them inside)
        text = text.replace("\r", " ").replace("\n", " ")  # an SSE data line stays one line
    return orjson.Fragment(text)


def _refuse(token: str) -> Any:
    raise ValueError(token)

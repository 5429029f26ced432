"""Payloads are serialised once: the JSON, parsed value, text and number check that
``read_payload`` gives are those of ``json.dumps`` then ``json.loads``, for every payload."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dwbase.errors import InvalidInputError, PayloadTooLargeError
from dwbase.payload import payload_text, read_payload
from dwbase.quarantine import has_impossible_number


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def reference(value: Any) -> tuple[str, Any, str, bool]:
    """What the payload was before: serialised, parsed back, its text, its numbers finite."""
    text = dumps(value)
    parsed = json.loads(text)
    return text, parsed, payload_text(parsed), not has_impossible_number(parsed)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (JSON's NaN parses to a new float each time)."""
    return dumps(a) == dumps(b) and type(a) is type(b)


_scalars = (
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(alphabet=st.characters(codec="utf-8"), max_size=8), _json, max_size=6)
)
def test_a_payload_is_serialised_as_json_dumps_does_and_read_as_parsing_it_back(
    payload: dict[str, Any],
) -> None:
    p = read_payload(payload=payload)
    text, parsed, words, finite = reference(payload)
    assert p.json == text
    assert same(p.parsed, parsed)
    assert (p.text, p.finite) == (words, finite)
    q = read_payload(payload_json=text)  # the same payload given as its JSON
    assert (q.json, q.text, q.finite) == (text, words, finite)
    assert same(q.parsed, parsed)


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@pytest.mark.parametrize(
    "payload",
    [
        {"a": (1, 2)},  # a tuple is a JSON array
        {1: "one", None: "none", 2.5: "x", False: "f"},  # keys become strings
        {"level": Level.HIGH},  # an int subclass is written as a number
        {"n": Name("x")},
        OrderedDict([("b", 1), ("a", 2)]),
        {"a": [1, {"b": 2, 3: None}]},
        {"deep": [[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]},  # past the walk's depth
        {"nan": math.nan, "inf": [math.inf, -math.inf]},
        {"big": 10**40, "f": 1e300, "neg": -0.0},
        {"ctrl": "a\x00b\n\u2028", "é": "ü"},
        {},
    ],
)
def test_payloads_of_other_python_types_read_as_their_json_parsed_back(payload: Any) -> None:
    p = read_payload(payload=payload)
    text, parsed, words, finite = reference(payload)
    assert (p.json, p.text) == (text, words)
    assert p.finite in (finite, False)  # False: not known (quarantine then walks it itself)
    assert same(p.parsed, parsed)


def test_bad_payloads_are_refused_as_before() -> None:
    with pytest.raises(InvalidInputError, match="unpaired surrogate"):
        read_payload(payload={"text": "a\ud800"})
    with pytest.raises(InvalidInputError, match="unpaired surrogate"):
        read_payload(payload={"a\udfff": "x"})
    with pytest.raises(InvalidInputError, match="not JSON-serialisable"):
        read_payload(payload={"x": {1, 2}})
    with pytest.raises(PayloadTooLargeError, match="payload is 17 bytes; the limit is 13"):
        read_payload(payload={"text": "ééé"}, max_bytes=13)
    with pytest.raises(InvalidInputError, match="nested too deeply"):
        read_payload(payload={"a": json.loads("[" * 150 + "]" * 150)})

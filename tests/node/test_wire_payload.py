"""An atom's payload comes back as an object on every read route, in SSE and in the CLI's
--json output, next to ``payload_json`` (the original's wire shape); unknown fields in a
request body are refused with the valid fields named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dwbase.cli import app as cli_app
from dwbase.engine import Engine
from dwbase.errors import InvalidInputError
from dwbase.model import validate_atom
from dwbase.node import start_background
from dwbase.storage.base import record_checksum

from .conftest import assert_error, make_settings, new_atom

PAYLOAD: dict[str, Any] = {"text": "checkout latency 820ms", "ms": 820, "tags": ["p95", None]}


def _check(atom: dict[str, Any]) -> None:
    assert atom["payload"] == PAYLOAD
    assert json.loads(atom["payload_json"]) == PAYLOAD


def _events(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")
    ]


def test_every_read_route_and_sse_answer_payload_as_an_object(http: TestClient) -> None:
    aid = http.post("/remember", json=new_atom(payload=PAYLOAD)).json()
    _check(http.get(f"/atoms/{aid}").json())
    (replayed,) = http.post("/replay", json={"world": "demo"}).json()
    _check(replayed)
    answer = http.post("/ask", json={"world": "demo", "text": "checkout latency?"}).json()
    _check(answer["hits"][0]["atom"])
    _check(answer["supporting_atoms"][0])
    handle = http.post("/observe/start", json={"world": "demo"}).json()["handle"]
    http.post("/remember", json=new_atom(payload=PAYLOAD))
    (polled,) = http.post("/observe/poll", json={"handle": handle}).json()
    _check(polled)
    resp = http.get("/observe/stream", params={"world": "demo", "max_events": 1, "after": aid})
    (event,) = _events(resp.text)
    _check(event)


def test_payload_json_keeps_the_original_text_and_checksums_do_not_see_payload(
    http: TestClient, engine: Engine
) -> None:
    raw = '{"ms": 820,  "text": "x"}'
    aid = http.post("/remember", json=new_atom(payload_json=raw, payload=None)).json()
    got = http.get(f"/atoms/{aid}").json()
    assert got["payload_json"] == raw and got["payload"] == {"ms": 820, "text": "x"}
    atom = engine.get(aid)
    assert "payload" not in atom.to_dict()
    assert record_checksum(validate_atom(got)) == record_checksum(atom)


def test_a_wire_atom_is_taken_back_only_when_payload_matches_payload_json(
    http: TestClient,
) -> None:
    aid = http.post("/remember", json=new_atom(payload=PAYLOAD)).json()
    got = http.get(f"/atoms/{aid}").json()
    assert validate_atom(got).payload == PAYLOAD
    with pytest.raises(InvalidInputError, match="payload and payload_json differ"):
        validate_atom({**got, "payload": {"text": "something else"}})


def test_cli_json_output_carries_payload_on_both_backends(tmp_path: Path) -> None:
    runner = CliRunner()
    store = tmp_path / "store"

    def ok(*args: str) -> Any:
        result = runner.invoke(cli_app, list(args), prog_name="dwbase", env={})
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return json.loads(result.stdout)

    aid = ok("--data-dir", str(store), "remember", "--world", "demo", "--text", "hi", "--json")[
        "id"
    ]
    want = {"text": "hi"}
    assert ok("--data-dir", str(store), "inspect", aid, "--json")["payload"] == want
    assert [
        a["payload"] for a in ok("--data-dir", str(store), "replay", "-w", "demo", "--json")
    ] == [want]
    answer = ok("--data-dir", str(store), "ask", "-w", "demo", "hi", "--json")
    assert answer["hits"][0]["atom"]["payload"] == want
    with start_background(make_settings(tmp_path / "n", listen="127.0.0.1:0")) as node:
        api = ("--api", node.url)
        aid = ok(*api, "remember", "--world", "demo", "--text", "hi", "--json")["id"]
        assert ok(*api, "inspect", aid, "--json")["payload"] == want
        assert [a["payload"] for a in ok(*api, "replay", "-w", "demo", "--json")] == [want]


def test_an_unknown_atom_field_names_the_valid_fields(engine: Engine) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown atom field\(s\): colour; valid: .*world"):
        engine.remember_atom({"world": "demo", "payload": {"text": "x"}, "colour": "red"})


def test_the_node_names_the_valid_fields_of_an_unknown_body_field(http: TestClient) -> None:
    err = assert_error(http.post("/remember", json=new_atom(colour="red")), 400, "invalid_input")
    assert err["details"]["field"] == "colour"
    assert "valid:" in err["message"] and "payload_json" in err["message"], err
    nested = http.post(
        "/remember/batch",
        json={"atoms": [new_atom(links=[{"target": "x", "kind": "references", "why": 1}])]},
    )
    err = assert_error(nested, 400, "invalid_input")
    assert "why" in err["message"] and "valid: target, kind" in err["message"], err
    err = assert_error(
        http.post("/replay", json={"world": "demo", "colour": 1}), 400, "invalid_input"
    )
    assert "valid: world, filter" in err["message"], err
    bad_filter = http.post("/replay", json={"world": "demo", "filter": {"colour": 1}})
    err = assert_error(bad_filter, 400, "invalid_input")
    assert "colour" in err["message"] and "labels" in err["message"], err


def test_payload_is_exact_for_big_numbers_null_for_nan_and_sse_stays_one_line(
    http: TestClient,
) -> None:
    big = '{\n  "n": 123456789012345678901234567890,\n  "s": "NaN"\n}'
    first = http.post("/remember", json=new_atom()).json()
    aid = http.post("/remember", json=new_atom(payload_json=big, payload=None)).json()
    got = http.get(f"/atoms/{aid}").json()
    assert got["payload"] == {"n": 123456789012345678901234567890, "s": "NaN"}
    assert got["payload_json"] == big
    (event,) = _events(
        http.get(
            "/observe/stream",
            params={"world": "demo", "max_events": 1, "after": first, "timeout_s": 2},
        ).text
    )
    assert event["payload"] == got["payload"]
    held = http.post("/remember", json=new_atom(payload_json='{"v": NaN}', payload=None)).json()
    (atom,) = http.get("/quarantine", params={"world": "demo"}).json()
    assert atom["id"] == held["id"] and atom["payload"] == {"v": None}
    assert atom["payload_json"] == '{"v": NaN}'
    assert validate_atom(atom).payload_json == '{"v": NaN}'

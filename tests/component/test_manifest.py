"""component.manifest.json is the WIT's operations with JSON Schemas, in lock-step with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dwbase.component.config import VARIABLES
from dwbase.component.manifest import ERROR_CODES, build_manifest, parse_wit
from dwbase.component.service import CODES

ROOT = Path(__file__).resolve().parents[2]
WIT = ROOT / "wit"
COMMITTED = WIT / "component.manifest.json"


def test_the_committed_manifest_is_the_one_the_wit_gives() -> None:
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == build_manifest(WIT), (
        "wit/component.manifest.json is stale: regenerate it with "
        "python -c 'from dwbase.component.manifest import write_manifest; write_manifest()'"
    )


def test_every_function_of_the_wit_is_an_operation_and_no_other() -> None:
    text = (WIT / "dwbase-core.wit").read_text(encoding="utf-8")
    declared = re.findall(r"^\s*([a-z0-9-]+): func\(", text, flags=re.M)
    ops = [op["name"] for op in build_manifest(WIT)["operations"]]
    assert ops == declared
    for name in (
        "remember",
        "ask",
        "observe",
        "replay",
        "observe-start",
        "observe-poll",
        "observe-stop",
        "observe-stats",
        "health",
        "remember-v2",
        "ask-v2",
        "observe-start-v2",
        "observe-poll-v2",
        "observe-stop-v2",
        "observe-stats-v2",
        "health-v2",
        "metrics-snapshot",
    ):
        assert name in ops


def test_v2_operations_declare_the_tool_error_and_v1_none() -> None:
    for op in build_manifest(WIT)["operations"]:
        if op["name"].endswith("-v2") or op["name"] == "metrics-snapshot":
            assert op["version"] == "v2" and op["error"] == {"$ref": "#/definitions/tool_error"}
        else:
            assert op["version"] == "v1" and op["error"] is None


def test_schemas_follow_the_records_field_by_field() -> None:
    m = build_manifest(WIT)
    new_atom = m["definitions"]["new_atom"]
    assert new_atom["required"] == [
        "world",
        "worker",
        "kind",
        "timestamp",
        "importance",
        "payload_json",
        "vector",
        "flags",
        "labels",
        "links",
    ]
    assert new_atom["properties"]["vector"] == {
        "anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}]
    }
    assert m["definitions"]["link_kind"]["enum"] == [
        "supersedes",
        "contradicts",
        "confirms",
        "references",
    ]
    remember = next(op for op in m["operations"] if op["name"] == "remember-v2")
    assert remember["input"]["properties"] == {"atom": {"$ref": "#/definitions/new_atom"}}
    assert remember["output"] == {"type": "string"}


def test_a_changed_wit_changes_the_manifest() -> None:
    text = (WIT / "dwbase-types.wit").read_text(encoding="utf-8")
    changed = text.replace("payload-json: string,", "payload-json: string,\n        extra: u32,", 1)
    model = parse_wit([changed, (WIT / "dwbase-core.wit").read_text(encoding="utf-8")])
    assert ("extra", ("u32", ())) in model.records["atom"]  # the first record with it


def test_error_codes_and_variables_agree_everywhere() -> None:
    m = build_manifest(WIT)
    assert m["error_codes"] == list(ERROR_CODES) == list(CODES)
    assert set(m["config"]) == set(VARIABLES)
    types_wit = (WIT / "dwbase-types.wit").read_text(encoding="utf-8")
    for code in ERROR_CODES:
        assert code in types_wit


def test_the_docs_name_every_variable_error_code_and_operation() -> None:
    text = (ROOT / "docs" / "component.md").read_text(encoding="utf-8")
    for name, (default, _) in VARIABLES.items():
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{name}` |")), None)
        assert row is not None, name
        assert (f"`{default}`" if default else "unset") in row, row
    for code in ERROR_CODES:
        assert f"| `{code}` |" in text, code
    for op in build_manifest(WIT)["operations"]:
        assert f"{op['name']}: func(" in text, op["name"]

"""``component.manifest.json``: every operation of the WIT with JSON Schemas, made from the WIT.

The manifest is read from ``wit/*.wit`` by a small parser of the WIT subset DWBase uses
(records, enums, functions; ``string``, ``bool``, ``f64``, ``u32``, ``u64``, ``option``,
``list``, ``result``), so it cannot say anything the WIT does not. JSON field names are the
WIT names in snake_case (``payload-json`` is ``payload_json``), as on the HTTP node.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import UnavailableError
from .config import VARIABLES

PACKAGE_DIR = Path(__file__).resolve().parent

PACKAGE = "dwbase:core@0.1.0"
INTERFACE = "dwbase:core/engine@0.1.0"
ERROR_CODES = (
    "capability_denied",
    "payload_too_large",
    "importance_cap",
    "kind_not_allowed",
    "label_not_allowed",
    "invalid_input",
    "invalid_handle",
    "storage_error",
    "internal_error",
)

_TOKEN = re.compile(r"->|%?[A-Za-z_][A-Za-z0-9_-]*(?:@[0-9.]+)?|[{}()<>,:;./*@=]")
_PRIMITIVE: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "f64": {"type": "number"},
    "f32": {"type": "number"},
    "u32": {"type": "integer", "minimum": 0, "maximum": 4294967295},
    "u64": {"type": "integer", "minimum": 0},
}

TypeRef = tuple[str, tuple["TypeRef", ...]]  # name, type arguments


class WitModel:
    """Records, enums and the engine interface's functions, in declaration order."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, TypeRef]]] = {}
        self.enums: dict[str, list[str]] = {}
        self.functions: dict[str, tuple[list[tuple[str, TypeRef]], TypeRef | None]] = {}


def find_wit_dir() -> Path:
    """The WIT files: ``wit/`` of a source checkout, else the copy inside the package."""
    for candidate in (PACKAGE_DIR.parents[2] / "wit", PACKAGE_DIR / "wit"):
        if (candidate / "dwbase-core.wit").is_file():
            return candidate
    raise UnavailableError("the WIT files (wit/dwbase-core.wit) are not found")


def _ident(tok: str) -> str:
    return tok[1:] if tok.startswith("%") else tok


def parse_wit(texts: list[str]) -> WitModel:
    model = WitModel()
    for text in texts:
        text = re.sub(r"//[^\n]*", "", text)
        _Parser(_TOKEN.findall(text), model).run()
    return model


class _Parser:
    def __init__(self, tokens: list[str], model: WitModel) -> None:
        self.t = tokens
        self.i = 0
        self.m = model
        self.interface = ""

    def peek(self) -> str:
        return self.t[self.i] if self.i < len(self.t) else ""

    def take(self, expect: str | None = None) -> str:
        tok = self.peek()
        if expect is not None and tok != expect:
            raise ValueError(f"WIT: expected {expect!r}, found {tok!r} (token {self.i})")
        self.i += 1
        return tok

    def skip_statement(self) -> None:
        while self.take() != ";":
            pass

    def run(self) -> None:
        while self.i < len(self.t):
            tok = self.take()
            if tok in ("package", "use"):
                self.skip_statement()
            elif tok == "interface":
                self.interface = _ident(self.take())
                self.take("{")
                self.body()
            elif tok == "world":
                self.take()
                self.take("{")
                while self.take() != "}":
                    pass
            else:
                raise ValueError(f"WIT: unexpected {tok!r}")

    def body(self) -> None:
        while self.peek() != "}":
            tok = self.take()
            if tok == "use":
                depth = 0
                while True:
                    x = self.take()
                    depth += x == "{"
                    depth -= x == "}"
                    if x == ";" and depth == 0:
                        break
            elif tok == "enum":
                name = _ident(self.take())
                self.take("{")
                cases: list[str] = []
                while self.peek() != "}":
                    cases.append(_ident(self.take()))
                    if self.peek() == ",":
                        self.take()
                self.take("}")
                self.m.enums[name] = cases
            elif tok == "record":
                name = _ident(self.take())
                self.take("{")
                self.m.records[name] = self.fields("}")
                self.take("}")
            else:
                name = _ident(tok)
                self.take(":")
                self.take("func")
                self.take("(")
                params = self.fields(")")
                self.take(")")
                result = None
                if self.peek() == "->":
                    self.take()
                    result = self.type()
                self.take(";")
                if self.interface == "engine":
                    self.m.functions[name] = (params, result)
        self.take("}")

    def fields(self, end: str) -> list[tuple[str, TypeRef]]:
        out: list[tuple[str, TypeRef]] = []
        while self.peek() != end:
            name = _ident(self.take())
            self.take(":")
            out.append((name, self.type()))
            if self.peek() == ",":
                self.take()
        return out

    def type(self) -> TypeRef:
        name = _ident(self.take())
        args: list[TypeRef] = []
        if self.peek() == "<":
            self.take()
            while self.peek() != ">":
                args.append(self.type())
                if self.peek() == ",":
                    self.take()
            self.take(">")
        return name, tuple(args)


def _snake(name: str) -> str:
    return name.replace("-", "_")


def schema_of(ref: TypeRef) -> dict[str, Any]:
    name, args = ref
    if name in _PRIMITIVE:
        return dict(_PRIMITIVE[name])
    if name == "option":
        return {"anyOf": [schema_of(args[0]), {"type": "null"}]}
    if name == "list":
        return {"type": "array", "items": schema_of(args[0])}
    if name == "_":
        return {"type": "null"}
    if name == "result":
        raise ValueError("WIT: a result is only allowed as a function's result")
    return {"$ref": f"#/definitions/{_snake(name)}"}


def _definitions(model: WitModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, cases in model.enums.items():
        out[_snake(name)] = {"type": "string", "enum": cases}
    for name, fields in model.records.items():
        out[_snake(name)] = {
            "type": "object",
            "properties": {_snake(f): schema_of(t) for f, t in fields},
            "required": [_snake(f) for f, _ in fields],
            "additionalProperties": False,
        }
    return out


def operations(model: WitModel) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for name, (params, result) in model.functions.items():
        error: dict[str, Any] | None = None
        output: dict[str, Any] | None = None
        if result is not None and result[0] == "result":
            ok, err = result[1]
            output = schema_of(ok)
            error = schema_of(err)
        elif result is not None:
            output = schema_of(result)
        ops.append(
            {
                "name": name,
                "version": "v2" if error is not None else "v1",
                "traps": False,
                "input": {
                    "type": "object",
                    "properties": {_snake(p): schema_of(t) for p, t in params},
                    "required": [_snake(p) for p, _ in params],
                    "additionalProperties": False,
                },
                "output": output,
                "error": error,
            }
        )
    return ops


def build_manifest(wit_dir: Path) -> dict[str, Any]:
    """The manifest of the WIT files in ``wit_dir``."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(wit_dir.glob("*.wit"))]
    model = parse_wit(texts)
    return {
        "name": "dwbase-core",
        "component": "dwbase-core.wasm",
        "package": PACKAGE,
        "world": "core",
        "interface": INTERFACE,
        "wasi": "preview2",
        "preopens": [{"guest_path": "/data", "purpose": "the atom log (DWBASE_DATA_DIR)"}],
        "config": {
            name: {"default": default or None, "description": meaning}
            for name, (default, meaning) in VARIABLES.items()
        },
        "error_codes": list(ERROR_CODES),
        "operations": operations(model),
        "definitions": _definitions(model),
    }


def write_manifest(wit_dir: Path | None = None) -> Path:
    """Regenerate ``wit/component.manifest.json`` (the copy tests compare with the WIT)."""
    where = wit_dir or find_wit_dir()
    target = where / "component.manifest.json"
    target.write_text(json.dumps(build_manifest(where), indent=2) + "\n", encoding="utf-8")
    return target

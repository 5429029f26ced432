"""Run a pack's flow against its component under wasmtime (needs the ``component`` extra).

A flow is a list of steps: ``{"call": "<wit function>", "args": [...]}`` calls the component
(record arguments may leave out fields: lists default to empty, options to none, strings to
empty, numbers to 0), ``{"restart": true}`` drops the instance and starts a fresh one over the
same data directory (what a later session of a flow sees), ``"show"`` prints part of a result
and ``"expect"`` lists texts the shown result must contain.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..component.host import ComponentHost, ComponentInstance
from ..errors import InvalidInputError
from . import Pack


def _default(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _default(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return None
    kind = schema.get("type")
    if kind == "object":
        return {}
    return {"array": [], "string": "", "number": 0.0, "integer": 0, "boolean": False}.get(str(kind))


def fill(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """``value`` with the fields its schema requires and it leaves out set to their defaults."""
    if "$ref" in schema:
        return fill(value, defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return None if value is None else fill(value, schema["anyOf"][0], defs)
    if schema.get("type") == "object" and isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        unknown = set(value) - set(props)
        if unknown:
            raise InvalidInputError(f"unknown field(s) {sorted(unknown)}; known: {sorted(props)}")
        return {
            k: fill(value[k], s, defs) if k in value else _default(s, defs)
            for k, s in props.items()
        }
    if schema.get("type") == "array" and isinstance(value, list):
        return [fill(v, schema["items"], defs) for v in value]
    return value


def _shown(result: Any, show: str | None) -> Any:
    if show is None:
        return result
    tag, value = result if isinstance(result, tuple) else ("ok", result)
    if tag != "ok":
        return value
    if show == "answer" and isinstance(value, dict):
        return value.get("text", "")
    if isinstance(value, dict):
        return value.get(show)
    return value


def run_flow(
    pack: Pack,
    flow_name: str,
    *,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    echo: Callable[[str], None] = print,
) -> list[Any]:
    """Run ``flow_name``; returns each step's result and echoes what the flow shows.

    ``InvalidInputError`` when a step's result lacks an expected text or a v2 call fails.
    """
    flow = pack.flow(flow_name)
    manifest = json.loads(pack.files[pack.meta["manifest"]])
    ops = {op["name"]: op for op in manifest["operations"]}
    defs: dict[str, Any] = manifest["definitions"]
    env = pack.config()
    with tempfile.TemporaryDirectory(prefix="dwbase-pack-") as tmp:
        wasm = Path(tmp) / "component.wasm"
        wasm.write_bytes(pack.component)
        host = ComponentHost.load(wasm, cache_dir=cache_dir)
        where = data_dir or str(Path(tmp) / "data")
        instance: ComponentInstance = host.instantiate(data_dir=where, env=env)
        results: list[Any] = []
        for n, step in enumerate(flow["steps"], 1):
            if step.get("restart"):
                instance = host.instantiate(data_dir=where, env=env)
                echo(f"step {n}: restart (a fresh instance over the same data)")
                results.append(None)
                continue
            name = step["call"]
            if name not in ops:
                raise InvalidInputError(f"step {n}: the component has no operation {name!r}")
            params = list(ops[name]["input"]["properties"].values())
            args = [fill(a, s, defs) for a, s in zip(step.get("args", []), params, strict=True)]
            result = instance.call(name, *args)
            results.append(result)
            if isinstance(result, tuple) and result[0] == "err":
                raise InvalidInputError(
                    f"step {n} ({name}) failed: {result[1]['code']}: {result[1]['message']}"
                )
            shown = _shown(result, step.get("show"))
            echo(f"step {n}: {name} -> {shown if 'show' in step else 'ok'}")
            for text in step.get("expect", []):
                if text not in str(shown):
                    raise InvalidInputError(f"step {n} ({name}): expected {text!r} in {shown!r}")
        return results

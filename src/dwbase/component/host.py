"""Run the DWBase component under wasmtime from Python (needs the ``component`` extra).

>>> host = ComponentHost.load("dist/dwbase-core.wasm")                # doctest: +SKIP
>>> db = host.instantiate(data_dir="./memory", env={"DWBASE_TENANT_ID": "acme"})  # +SKIP
>>> db.call("remember-v2", {"world": "tenant:acme/notes", ...})     # doctest: +SKIP
('ok', '01a2...')

Arguments are plain Python values shaped like the WIT records (dicts with the WIT field names
in snake_case, lists, ``None`` for ``none``, link kinds as strings); results come back the
same way, and a v2 function's result as ``("ok", value)`` or ``("err", tool_error_dict)``.

Compiling the 20 MB component to machine code takes seconds, so the compiled form is cached
(``Component.serialize``) under ``cache_dir``, keyed by the hash of the ``.wasm`` and the
wasmtime version; instantiating from it takes milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

INTERFACE = "dwbase:core/engine@0.1.0"
KEEP_COMPILED = 4  # compiled components kept in the cache (each about 35 MB), newest first
GUEST_DATA_DIR = "/data"


def _prune(cache: Path, *, keep: int) -> None:
    # Every rebuilt .wasm compiles to a new entry: keep the newest few.
    entries = sorted(cache.glob("*.cwasm"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)


def _wasmtime_version() -> str:
    try:
        from importlib.metadata import version

        return version("wasmtime")
    except Exception:  # pragma: no cover - an odd install; the hash still keys the cache
        return "unknown"


class ComponentHost:
    """A compiled component and the wasmtime engine it belongs to."""

    def __init__(self, engine: wasmtime.Engine, component: wc.Component) -> None:
        self.engine = engine
        self.component = component
        self.linker = wc.Linker(engine)
        self.linker.add_wasip2()

    @classmethod
    def load(cls, wasm: str | os.PathLike[str], *, cache_dir: str | None = None) -> ComponentHost:
        data = Path(wasm).read_bytes()
        engine = wasmtime.Engine()
        key = hashlib.sha256(data + _wasmtime_version().encode()).hexdigest()[:32]
        cache = Path(cache_dir or os.path.join(tempfile.gettempdir(), "dwbase-component-cache"))
        compiled = cache / f"{key}.cwasm"
        if compiled.exists():
            try:
                return cls(engine, wc.Component.deserialize(engine, compiled.read_bytes()))
            except wasmtime.WasmtimeError:
                pass  # a cache from another build of wasmtime: compile again
        component = wc.Component(engine, data)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = compiled.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(bytes(component.serialize()))
        os.replace(tmp, compiled)
        _prune(cache, keep=KEEP_COMPILED)
        return cls(engine, component)

    def instantiate(
        self, *, data_dir: str | os.PathLike[str], env: Mapping[str, str] | None = None
    ) -> ComponentInstance:
        """A fresh instance with ``data_dir`` preopened as ``/data`` and ``env`` set."""
        os.makedirs(data_dir, exist_ok=True)
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        wasi.env = [("DWBASE_DATA_DIR", GUEST_DATA_DIR), *(env or {}).items()]
        wasi.preopen_dir(os.fspath(data_dir), GUEST_DATA_DIR)
        wasi.inherit_stderr()
        store.set_wasi(wasi)
        instance = self.linker.instantiate(store, self.component)
        return ComponentInstance(store, instance)


class ComponentInstance:
    """One instance: call its exported functions by their WIT names."""

    def __init__(self, store: wasmtime.Store, instance: wc.Instance) -> None:
        self.store = store
        self.instance = instance
        index = instance.get_export_index(store, INTERFACE)
        if index is None:
            raise LookupError(f"the component does not export {INTERFACE}")
        self._index = index
        self._funcs: dict[str, wc.Func] = {}

    def func(self, name: str) -> wc.Func:
        if name not in self._funcs:
            idx = self.instance.get_export_index(self.store, name, self._index)
            fn = self.instance.get_func(self.store, idx) if idx is not None else None
            if fn is None:
                raise LookupError(f"the component has no function {name!r}")
            self._funcs[name] = fn
        return self._funcs[name]

    def call(self, name: str, *args: Any) -> Any:
        """Call ``name`` with plain arguments; a trap raises ``wasmtime.WasmtimeError``."""
        fn = self.func(name)
        ty = fn.type(self.store)
        params = [to_wasm(a, t) for a, (_, t) in zip(args, ty.params, strict=True)]
        raw = fn(self.store, *params)
        fn.post_return(self.store)
        result = ty.result
        return to_plain(raw, result) if result is not None else None


def to_wasm(value: Any, ty: wc.ValType) -> Any:
    """A plain Python value as wasmtime's component value of type ``ty``."""
    if isinstance(ty, wc.RecordType):
        rec = wc.Record()
        for name, fty in ty.fields:
            key = name.replace("-", "_")
            if not isinstance(value, Mapping) or key not in value:
                raise ValueError(f"missing field {key!r}")
            setattr(rec, name, to_wasm(value[key], fty))
        return rec
    if isinstance(ty, wc.ListType):
        return [to_wasm(v, ty.element) for v in value]
    if isinstance(ty, wc.OptionType):
        return None if value is None else to_wasm(value, ty.payload)
    if isinstance(ty, wc.F64 | wc.F32) and isinstance(value, int):
        return float(value)
    return value


def to_plain(value: Any, ty: wc.ValType) -> Any:
    """wasmtime's component value as plain Python (see the module docs)."""
    if isinstance(ty, wc.RecordType):
        return {
            name.replace("-", "_"): to_plain(getattr(value, name), fty) for name, fty in ty.fields
        }
    if isinstance(ty, wc.ListType):
        return [to_plain(v, ty.element) for v in value]
    if isinstance(ty, wc.OptionType):
        return None if value is None else to_plain(value, ty.payload)
    if isinstance(ty, wc.ResultType):
        if isinstance(value, wc.Variant):
            tag, payload = value.tag, value.payload
        else:
            err_classes: set[type] = set()
            if ty.err is not None:
                ty.err.add_classes(err_classes)
            tag = "err" if err_classes and isinstance(value, tuple(err_classes)) else "ok"
            payload = value
        part = ty.ok if tag == "ok" else ty.err
        return tag, (to_plain(payload, part) if part is not None else None)
    return value

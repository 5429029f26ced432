"""The componentize-py entry point of the DWBase component (world ``dwbase:core/core``).

Each exported function converts its WIT records to the plain dicts of
:class:`dwbase.component.service.Service`, calls it, and converts the result back. Nothing may
escape: an uncaught exception traps the component and poisons the instance, so v1 functions
return their empty value on any failure and v2 functions raise ``Err(tool-error)``, which the
bindings turn into the ``err`` case of the result.

The bindings (``wit_world``, ``componentize_py_types``) exist only while componentize-py
builds the component, so they are loaded with importlib: the module still type-checks, and
componentize-py snapshots whatever the module imported at build time.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import os
from collections.abc import Callable
from typing import Any

from dwbase.component.service import EMPTY_HEALTH, Service, ToolFailure, empty_stats

types: Any = importlib.import_module("wit_world.imports.types")
_Err: Any = importlib.import_module("componentize_py_types").Err

_service: Service | None = None


def service() -> Service:
    global _service
    if _service is None:
        _service = Service(dict(os.environ))
    return _service


# ---------------------------------------------------------------------- WIT -> plain


def plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


# ---------------------------------------------------------------------- plain -> WIT


def _link(d: dict[str, Any]) -> Any:
    return types.Link(target=d["target"], kind=types.LinkKind[str(d["kind"]).upper()])


def _atom(d: dict[str, Any]) -> Any:
    vector = d.get("vector")
    return types.Atom(
        id=d["id"],
        world=d["world"],
        worker=d["worker"],
        kind=d["kind"],
        timestamp=d["timestamp"],
        importance=float(d["importance"]),
        payload_json=d["payload_json"],
        vector=[float(x) for x in vector] if vector is not None else None,
        flags=list(d["flags"]),
        labels=list(d["labels"]),
        links=[_link(x) for x in d["links"]],
        recorded_at=d["recorded_at"],
    )


def _atoms(rows: list[dict[str, Any]]) -> list[Any]:
    return [_atom(d) for d in rows]


def _answer(d: dict[str, Any]) -> Any:
    return types.Answer(
        world=d["world"], text=d["text"], supporting_atoms=_atoms(d["supporting_atoms"])
    )


def _answer_v2(d: dict[str, Any]) -> Any:
    return types.AnswerV2(
        world=d["world"],
        text=d["text"],
        supporting_atoms=_atoms(d["supporting_atoms"]),
        warnings=list(d["warnings"]),
    )


def _stats(d: dict[str, Any]) -> Any:
    return types.ObserveStatsSnapshot(**d)


def _health(d: dict[str, Any]) -> Any:
    return types.HealthSnapshot(**d)


def _labels(rows: list[dict[str, Any]]) -> list[Any]:
    return [types.MetricLabel(name=x["name"], value=x["value"]) for x in rows]


def _metrics(d: dict[str, Any]) -> Any:
    def sample(x: dict[str, Any]) -> Any:
        return types.MetricSample(name=x["name"], labels=_labels(x["labels"]), value=x["value"])

    return types.Metrics(
        counters=[sample(x) for x in d["counters"]],
        gauges=[sample(x) for x in d["gauges"]],
        histograms=[
            types.HistogramSample(
                name=x["name"], labels=_labels(x["labels"]), count=x["count"], sum=x["sum"]
            )
            for x in d["histograms"]
        ],
    )


# ---------------------------------------------------------------------- calling


def _v1(fn: Callable[..., Any], out: Callable[[Any], Any], empty: Any, *args: Any) -> Any:
    try:
        s = service()
        return out(s.v1(fn, empty, *(plain(a) for a in args)))
    except BaseException:
        return out(empty)


def _v2(fn: Callable[..., Any], out: Callable[[Any], Any], *args: Any) -> Any:
    try:
        s = service()
        result = s.v2(fn, *(plain(a) for a in args))
        return out(result)
    except ToolFailure as f:
        err = f.to_plain()
    except BaseException as exc:
        fault = ToolFailure("internal_error", f"internal error: {type(exc).__name__}: {exc}")
        err = fault.to_plain()
    raise _Err(types.ToolError(**err))


def _same(x: Any) -> Any:
    return x


def _none(_: Any) -> None:
    return None


def _unbound(name: str) -> Callable[..., Any]:
    # The service method, looked up per call so a failing configuration reports per call.
    def call(*args: Any) -> Any:
        return getattr(service(), name)(*args)

    call.__name__ = name
    return call


_EMPTY_ANSWER: dict[str, Any] = {"world": "", "text": "", "supporting_atoms": [], "warnings": []}


class Engine:
    """The exported interface ``dwbase:core/engine``."""

    def remember(self, atom: Any) -> str:
        return str(_v1(_unbound("remember"), _same, "", atom))

    def ask(self, question: Any) -> Any:
        return _v1(_unbound("ask"), _answer, _EMPTY_ANSWER, question)

    def observe(self, atom: Any) -> int:
        return int(_v1(_unbound("observe"), _same, 0, atom))

    def replay(self, world: str, filter: Any) -> list[Any]:
        return list(_v1(_unbound("replay"), _atoms, [], world, filter))

    def observe_start(self, filter: Any) -> str:
        return str(_v1(_unbound("observe_start"), _same, "", filter))

    def observe_poll(self, handle: str, max: int) -> list[Any]:
        return list(_v1(_unbound("observe_poll"), _atoms, [], handle, max))

    def observe_stop(self, handle: str) -> None:
        _v1(_unbound("observe_stop"), _none, None, handle)

    def observe_stats(self, handle: str) -> Any:
        return _v1(_unbound("observe_stats"), _stats, empty_stats(handle), handle)

    def health(self) -> Any:
        return _v1(_unbound("health"), _health, EMPTY_HEALTH)

    def remember_v2(self, atom: Any) -> str:
        return str(_v2(_unbound("remember"), _same, atom))

    def ask_v2(self, question: Any) -> Any:
        return _v2(_unbound("ask"), _answer_v2, question)

    def replay_v2(self, world: str, filter: Any) -> list[Any]:
        return list(_v2(_unbound("replay"), _atoms, world, filter))

    def observe_start_v2(self, filter: Any) -> str:
        return str(_v2(_unbound("observe_start"), _same, filter))

    def observe_poll_v2(self, handle: str, max: int) -> list[Any]:
        return list(_v2(_unbound("observe_poll"), _atoms, handle, max))

    def observe_stop_v2(self, handle: str) -> None:
        _v2(_unbound("observe_stop"), _none, handle)

    def observe_stats_v2(self, handle: str) -> Any:
        return _v2(_unbound("observe_stats"), _stats, handle)

    def health_v2(self) -> Any:
        return _v2(_unbound("health"), _health)

    def metrics_snapshot(self) -> Any:
        return _v2(_unbound("metrics"), _metrics)

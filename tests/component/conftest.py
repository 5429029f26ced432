"""The real component under wasmtime: built once per test session, cached by source hash.

Building takes a minute and compiling the 20 MB component to machine code tens of seconds, so
both are cached under the system temp directory: ``dwbase-component-build/<hash>/`` holds the
``.wasm`` for a hash of the package's Python and the WIT files, and the compiled form sits in
the host's cache. A lock file makes parallel workers wait for one build instead of racing.
"""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require

BUILD_ROOT = Path(tempfile.gettempdir()) / "dwbase-component-build"

TENANT = "acme"
WORLD = f"tenant:{TENANT}/notes"


def _toolchain() -> bool:
    near = Path(sys.executable).with_name("componentize-py")
    has_cli = near.exists() or shutil.which("componentize-py") is not None
    return has_cli and importlib.util.find_spec("wasmtime") is not None


@pytest.fixture(scope="session")
def component_wasm() -> Path:
    require(_toolchain(), "componentize-py and wasmtime (pip install 'dwbase[component]')")
    from dwbase.component.build import build_component, source_hash

    target = BUILD_ROOT / source_hash()[:24] / "dwbase-core.wasm"
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not target.exists():
            tmp = target.with_name("building.wasm")
            build_component(tmp)
            tmp.with_name("component.manifest.json").replace(
                target.with_name("component.manifest.json")
            )
            tmp.replace(target)
    # Each change to the engine builds anew: keep the three newest builds.
    builds = [d for d in BUILD_ROOT.iterdir() if (d / "dwbase-core.wasm").exists()]
    builds.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in builds[3:]:
        if old != target.parent:
            shutil.rmtree(old, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def component_host(component_wasm: Path) -> Any:
    from dwbase.component.host import ComponentHost

    cache = BUILD_ROOT / "compiled"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "compile.lock").open("w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        return ComponentHost.load(component_wasm)  # the default cache, shared with the CLI


Instantiate = Callable[..., Any]


@pytest.fixture
def instantiate(component_host: Any, tmp_path: Path) -> Iterator[Instantiate]:
    """``instantiate(env=..., data_dir=...)``: a fresh instance (default data: tmp_path/data)."""

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None) -> Any:
        settings = {"DWBASE_TENANT_ID": TENANT, **(env or {})}
        return component_host.instantiate(data_dir=data_dir or tmp_path / "data", env=settings)

    yield make


@pytest.fixture
def db(instantiate: Instantiate) -> Any:
    return instantiate()


def new_atom(text: str = "the sky is blue", **fields: Any) -> dict[str, Any]:
    """A valid new-atom record for :data:`WORLD`; ``fields`` override."""
    import json

    atom: dict[str, Any] = {
        "world": WORLD,
        "worker": "",
        "kind": "observation",
        "timestamp": "",
        "importance": 0.5,
        "payload_json": json.dumps({"text": text}),
        "vector": None,
        "flags": [],
        "labels": [],
        "links": [],
    }
    atom.update(fields)
    return atom


def question(text: str, world: str = WORLD, **fields: Any) -> dict[str, Any]:
    return {"world": world, "text": text, "filter": None, "limit": None, "as_of": None, **fields}


def atom_filter(world: str | None = WORLD, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "world": world,
        "kinds": [],
        "labels": [],
        "flags": [],
        "since": None,
        "until": None,
        "limit": None,
    }
    return {**base, **fields}

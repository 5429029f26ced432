"""``dwbase component build`` and ``dwbase pack build|run`` (the ``component`` extra)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UnavailableError
from .groups import sub_app
from .render import note

DEFAULT_WASM = Path("dist/dwbase-core.wasm")
DEFAULT_PACK = Path("dist/dwbase-memory.gtpack")

component_app = sub_app(
    "component",
    "The WASI Preview 2 component of the engine (docs/component.md).\n\n"
    "\b\nExample:\n  dwbase component build --out dist/dwbase-core.wasm",
)
pack_app = sub_app(
    "pack",
    "The Greentic pack dwbase-memory: build a .gtpack, run one of its flows.\n\n"
    "\b\nExample:\n  dwbase pack build\n"
    "  dwbase pack run --pack dist/dwbase-memory.gtpack --flow memory_demo",
)


@component_app.command("build")
def component_build(
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="The component to write (.wasm).")
    ] = DEFAULT_WASM,
) -> None:
    """Build the engine into a WASI component with componentize-py, and write
    component.manifest.json (every operation with JSON Schemas) beside it. Takes a minute.

    \b
    Example:
      dwbase component build --out dist/dwbase-core.wasm
    """
    from ..component.build import build_component

    started = time.monotonic()
    target = build_component(out)
    size = target.stat().st_size / 1e6
    note(f"built {target} ({size:.1f} MB) in {time.monotonic() - started:.0f} s")
    note(f"wrote {target.with_name('component.manifest.json')}")


@pack_app.command("build")
def pack_build(
    pack_dir: Annotated[
        Path, typer.Option("--pack-dir", metavar="DIR", help="The pack's sources.")
    ] = Path("packs/dwbase-memory"),
    component: Annotated[
        Path,
        typer.Option("--component", metavar="FILE", help="The built component (built if absent)."),
    ] = DEFAULT_WASM,
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="The pack to write.")
    ] = DEFAULT_PACK,
) -> None:
    """Zip the pack: pack.json, the component and its manifest, flows, default config, and
    CHECKSUMS.json (SHA-256 of every file; a pack that does not match it is refused).

    \b
    Example:
      dwbase pack build --out dist/dwbase-memory.gtpack
    """
    from ..pack import build_pack

    if not component.exists():
        from ..component.build import build_component

        note(f"{component} is missing: building it first")
        build_component(component)
    note(f"wrote {build_pack(pack_dir, component, out)}")


@pack_app.command("run")
def pack_run(
    pack: Annotated[
        Path, typer.Option("--pack", metavar="FILE", help="The .gtpack to run.")
    ] = DEFAULT_PACK,
    flow: Annotated[
        str, typer.Option("--flow", metavar="NAME", help="The flow to run.")
    ] = "memory_demo",
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", metavar="DIR", help="Data directory of the component (default: a temp one)."
        ),
    ] = None,
) -> None:
    """Verify the pack, then run one of its flows against its component under wasmtime and
    print what each step returned (what the flow recalled).

    \b
    Example:
      dwbase pack run --pack dist/dwbase-memory.gtpack --flow memory_demo
    """
    from ..pack import open_pack

    try:
        from ..pack.run import run_flow
    except ImportError as exc:
        raise UnavailableError(
            f"component extra not installed ({exc}): pip install 'dwbase[component]'"
        ) from exc
    opened = open_pack(pack)
    run_flow(opened, flow, data_dir=str(store) if store else None, echo=note)


def register(app: typer.Typer) -> None:
    app.add_typer(component_app)
    app.add_typer(pack_app)

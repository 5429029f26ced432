"""The Greentic pack: built from packs/dwbase-memory, verified on open, its flow run for real."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dwbase.cli import app
from dwbase.component.manifest import build_manifest
from dwbase.errors import InvalidInputError
from dwbase.pack import CHECKSUMS, build_pack, open_pack

ROOT = Path(__file__).resolve().parents[2]
PACK_DIR = ROOT / "packs" / "dwbase-memory"


@pytest.fixture
def fake_component(tmp_path: Path) -> Path:
    """A stand-in .wasm with a real manifest beside it, for the zip-level tests."""
    wasm = tmp_path / "build" / "dwbase-core.wasm"
    wasm.parent.mkdir()
    wasm.write_bytes(b"\0asm not really")
    wasm.with_name("component.manifest.json").write_text(json.dumps(build_manifest(ROOT / "wit")))
    return wasm


def _rewrite(pack: Path, change: dict[str, bytes | None]) -> None:
    with zipfile.ZipFile(pack) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    for name, data in change.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    with zipfile.ZipFile(pack, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def test_a_built_pack_holds_everything_and_verifies(fake_component: Path, tmp_path: Path) -> None:
    pack = build_pack(PACK_DIR, fake_component, tmp_path / "p.gtpack")
    with zipfile.ZipFile(pack) as zf:
        names = set(zf.namelist())
    assert names == {
        "pack.json",
        "dwbase-core.wasm",
        "component.manifest.json",
        "config/default.env",
        "flows/memory_demo.json",
        CHECKSUMS,
    }
    opened = open_pack(pack)
    assert opened.component == fake_component.read_bytes()
    assert opened.config()["DWBASE_ENFORCE_TENANT_NAMESPACE"] == "true"
    assert opened.flow("memory_demo")["steps"]
    with pytest.raises(InvalidInputError, match="no flow 'nope'"):
        opened.flow("nope")
    # Building twice gives the same bytes: the pack's own hash means something.
    again = build_pack(PACK_DIR, fake_component, tmp_path / "q.gtpack")
    assert again.read_bytes() == pack.read_bytes()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"dwbase-core.wasm": b"\0asm evil"}, "dwbase-core.wasm does not match its checksum"),
        ({"config/default.env": b"DWBASE_ENFORCE_TENANT_NAMESPACE=false\n"}, "default.env"),
        ({"flows/extra.json": b"{}"}, "flows/extra.json was added"),
        ({"flows/memory_demo.json": None}, "flows/memory_demo.json is missing"),
        ({CHECKSUMS: None}, "unverified pack"),
    ],
)
def test_a_tampered_pack_is_refused(
    fake_component: Path, tmp_path: Path, change: dict[str, bytes | None], why: str
) -> None:
    pack = build_pack(PACK_DIR, fake_component, tmp_path / "p.gtpack")
    _rewrite(pack, change)
    with pytest.raises(InvalidInputError, match=why):
        open_pack(pack)


def test_pack_run_refuses_a_tampered_pack_on_the_command_line(
    fake_component: Path, tmp_path: Path
) -> None:
    pack = build_pack(PACK_DIR, fake_component, tmp_path / "p.gtpack")
    _rewrite(pack, {"dwbase-core.wasm": b"\0asm evil"})
    result = CliRunner().invoke(app, ["pack", "run", "--pack", str(pack)], prog_name="dwbase")
    assert result.exit_code == 2
    assert "error[invalid_input]" in result.output and "refusing it" in result.output


@pytest.mark.component
def test_pack_build_and_run_remembers_and_recalls_across_sessions(
    component_wasm: Path, component_host: object, tmp_path: Path
) -> None:
    del component_host  # compiled once for the session; the pack's run finds it cached
    wasm = tmp_path / "dist" / "dwbase-core.wasm"
    wasm.parent.mkdir()
    shutil.copy(component_wasm, wasm)
    shutil.copy(component_wasm.with_name("component.manifest.json"), wasm.parent)
    pack = tmp_path / "dist" / "dwbase-memory.gtpack"
    runner = CliRunner()
    built = runner.invoke(
        app,
        [
            "pack",
            "build",
            "--pack-dir",
            str(PACK_DIR),
            "--component",
            str(wasm),
            "--out",
            str(pack),
        ],
        prog_name="dwbase",
    )
    assert built.exit_code == 0, built.output
    store = tmp_path / "memory"
    ran = runner.invoke(
        app,
        ["pack", "run", "--pack", str(pack), "--flow", "memory_demo", "--store", str(store)],
        prog_name="dwbase",
    )
    assert ran.exit_code == 0, ran.output
    assert "restart" in ran.output
    assert "prefers email" in ran.output and "premium plan" in ran.output
    assert "health-v2 -> ready" in ran.output
    assert (store / "atoms.log").stat().st_size > 0

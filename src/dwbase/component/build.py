"""``dwbase component build``: the engine as a WASI Preview 2 component, with componentize-py.

componentize-py runs ``guest/app.py`` once at build time and snapshots every module it
imported (the engine, the log store, the stdlib modules they import); the snapshot plus a
WASI build of CPython is the component. A module imported lazily at run time would be
missing, which is why the engine keeps its optional imports (numpy, sqlite3) behind
functions the component never calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import InvalidInputError, UnavailableError
from .manifest import build_manifest
from .manifest import find_wit_dir as wit_dir

WORLD = "core"
PACKAGE_DIR = Path(__file__).resolve().parent
SRC_ROOT = PACKAGE_DIR.parents[1]  # the directory holding the dwbase package


def componentize_py() -> str:
    """The componentize-py program: beside this Python, else on PATH."""
    near = Path(sys.executable).with_name("componentize-py")
    found = str(near) if near.exists() else shutil.which("componentize-py")
    if not found:
        raise UnavailableError(
            "componentize-py not found: pip install 'dwbase[component]'",
            hint="pip install 'dwbase[component]'",
        )
    return found


def guest_modules() -> list[Path]:
    """The package's files the component holds: what importing the guest's service imports."""
    code = (
        "import json, sys; import dwbase.component.service; print(json.dumps(sorted("
        "m.__file__ for n, m in list(sys.modules.items()) "
        "if n.split('.')[0] == 'dwbase' and getattr(m, '__file__', None))))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return [Path(p) for p in json.loads(proc.stdout)]


def source_hash() -> str:
    """A hash of what goes into the component: the modules it imports, the guest, the WIT."""
    h = hashlib.sha256()
    files = [*guest_modules(), PACKAGE_DIR / "guest" / "app.py", *sorted(wit_dir().glob("*.wit"))]
    for path in files:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def build_component(out: str | os.PathLike[str], *, quiet: bool = True) -> Path:
    """Build the component to ``out`` and write ``component.manifest.json`` beside it."""
    target = Path(out)
    if target.suffix != ".wasm":
        raise InvalidInputError(f"{target} must end in .wasm", field="out")
    target.parent.mkdir(parents=True, exist_ok=True)
    wit = wit_dir()
    cmd = [componentize_py(), "-d", str(wit), "-w", WORLD, "componentize"]
    cmd += ["-p", str(PACKAGE_DIR / "guest"), "-p", str(SRC_ROOT), "app", "-o", str(target)]
    if quiet:
        cmd.insert(1, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not target.exists():
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise UnavailableError(
            "componentize-py failed: " + "\n".join(lines[:20]), returncode=proc.returncode
        )
    manifest = build_manifest(wit)
    target.with_name("component.manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
    return target

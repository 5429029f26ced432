"""The Greentic pack ``dwbase-memory``: build a ``.gtpack``, verify it, run one of its flows.

A ``.gtpack`` is a zip holding ``pack.json``, the component (``dwbase-core.wasm``), its
``component.manifest.json``, the flows, the default config, and ``CHECKSUMS.json``: the SHA-256
of every other file. A pack whose files do not match it (changed, added or missing) is refused.
The checksums prove the files are the ones the pack was built with, not who built it: ship the
``.gtpack``'s own SHA-256 (``SHA256SUMS`` of a release) through a channel you trust.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

CHECKSUMS = "CHECKSUMS.json"
PACK_FILE = "pack.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_pack(pack_dir: str | Path, component: str | Path, out: str | Path) -> Path:
    """Zip ``pack_dir`` with the built ``component`` (and the manifest beside it) into ``out``."""
    src = Path(pack_dir)
    wasm = Path(component)
    meta = json.loads((src / PACK_FILE).read_text(encoding="utf-8"))
    manifest = wasm.with_name("component.manifest.json")
    for needed in (wasm, manifest):
        if not needed.is_file():
            raise InvalidInputError(
                f"{needed} is missing: build the component first (dwbase component build)"
            )
    files: dict[str, bytes] = {
        PACK_FILE: (src / PACK_FILE).read_bytes(),
        meta["component"]: wasm.read_bytes(),
        meta["manifest"]: manifest.read_bytes(),
        meta["config"]: (src / meta["config"]).read_bytes(),
    }
    for rel in meta["flows"].values():
        files[rel] = (src / rel).read_bytes()
    sums = {name: _sha256(data) for name, data in sorted(files.items())}
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
        zf.writestr(
            zipfile.ZipInfo(CHECKSUMS, date_time=(2024, 1, 1, 0, 0, 0)),
            json.dumps({"sha256": sums}, indent=2, sort_keys=True) + "\n",
        )
    tmp.replace(target)
    return target


class Pack:
    """A verified pack's files, in memory."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.meta: dict[str, Any] = json.loads(files[PACK_FILE])

    @property
    def component(self) -> bytes:
        return self.files[self.meta["component"]]

    def flow(self, name: str) -> dict[str, Any]:
        flows: dict[str, str] = self.meta["flows"]
        if name not in flows:
            raise InvalidInputError(
                f"the pack has no flow {name!r}; its flows: {', '.join(sorted(flows))}"
            )
        flow: dict[str, Any] = json.loads(self.files[flows[name]])
        return flow

    def config(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.files[self.meta["config"]].decode("utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip()
        return out


def open_pack(path: str | Path) -> Pack:
    """Read and verify a ``.gtpack``; ``InvalidInputError`` says what does not match."""
    try:
        with zipfile.ZipFile(path) as zf:
            files = {name: zf.read(name) for name in zf.namelist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"{path} is not a readable pack: {exc}") from exc
    if CHECKSUMS not in files:
        raise InvalidInputError(f"pack {path} has no {CHECKSUMS}: refusing an unverified pack")
    try:
        sums: dict[str, str] = json.loads(files.pop(CHECKSUMS))["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"pack {path}: {CHECKSUMS} is unreadable") from exc
    problems = [f"{n} was added" for n in sorted(set(files) - set(sums))]
    problems += [f"{n} is missing" for n in sorted(set(sums) - set(files))]
    problems += [
        f"{n} does not match its checksum"
        for n in sorted(set(sums) & set(files))
        if _sha256(files[n]) != sums[n]
    ]
    if problems:
        raise InvalidInputError(
            f"pack {path} was changed after it was built, refusing it: {'; '.join(problems)}",
            problems=problems,
        )
    return Pack(files)

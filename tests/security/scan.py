"""Helpers of the encryption tests: keys, and a scan of every file (and backup) for needles."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import tempfile
from pathlib import Path

import zstandard

from dwbase.security.keys import EnvKeyProvider, env_name

K1 = "11" * 32
K2 = "22" * 32
WORDS = ["quokkafruit", "zanzibarite", "marmalade42", "perihelionx", "octothorpez"]


def keys(**by_id: str) -> EnvKeyProvider:
    """A provider holding the given keys as ``DWBASE_KEY_<ID>`` would."""
    return EnvKeyProvider({env_name(k): v for k, v in by_id.items()})


def _blobs(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    if path.name.endswith(".tar.zst"):
        out: list[tuple[str, bytes]] = []
        with (
            zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as zr,
            tarfile.open(fileobj=zr, mode="r|") as tar,
        ):
            for m in tar:
                fh = tar.extractfile(m)
                if fh is not None:
                    out.append((f"{path.name}:{m.name}", fh.read()))
        return out
    return [(str(path), data)]


def scan_tree(root: Path, needles: list[bytes]) -> list[str]:
    """``file: needle`` for each needle found in any file under ``root`` (backups unpacked)."""
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    hits: list[str] = []
    for path in paths:
        for name, blob in _blobs(path):
            hits.extend(f"{name}: {n!r}" for n in needles if n in blob)
    return hits


def rewrite_backup(archive: Path, out: Path, *, drop_mac: bool = False) -> None:
    """Edit the store inside ``archive`` (a meta row no check covers), then recompute the
    manifest's checksums and sizes so that every file matches it again."""
    entries: dict[str, bytes] = {}
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as zr,
        tarfile.open(fileobj=zr, mode="r|") as tar,
    ):
        for m in tar:
            fh = tar.extractfile(m)
            assert fh is not None
            entries[m.name] = fh.read()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.sqlite3"
        db.write_bytes(entries["data/dwbase.sqlite3"])
        if not drop_mac:
            conn = sqlite3.connect(db)
            conn.execute("INSERT INTO meta(key, value) VALUES('planted', 'by an attacker')")
            conn.commit()
            conn.close()
        entries["data/dwbase.sqlite3"] = db.read_bytes()
    manifest = json.loads(entries["manifest.json"])
    body = entries["data/dwbase.sqlite3"]
    manifest["files"]["dwbase.sqlite3"] = {
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
    }
    if drop_mac:
        manifest.pop("mac", None)
        manifest.pop("encryption", None)
    entries["manifest.json"] = json.dumps(manifest).encode()
    with (
        out.open("wb") as sink,
        zstandard.ZstdCompressor().stream_writer(sink) as zw,
        tarfile.open(fileobj=zw, mode="w|") as tar,
    ):
        for name, blob in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))

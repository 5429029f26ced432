"""Backups refuse what does not match their manifest, stop a decompression bomb early, keep
secrets private and never replace a store another process has open."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zstandard

import dwbase
from dwbase.errors import ConflictError, InvalidInputError
from dwbase.ops.backup import create_backup, extract_verified, restore_backup
from dwbase.storage.base import GENESIS, chain_next, record_checksum
from dwbase.storage.sqlite_schema import COLS, row_to_stored
from sample_store import STORE_FILE, build_sample_store, read_everything


@pytest.fixture
def source(tmp_path: Path) -> Path:
    data = tmp_path / "src"
    build_sample_store(data)
    tokens = data / "tokens.json"
    tokens.write_text('{"tokens": []}\n')
    tokens.chmod(0o600)
    marker = data / "auth.json"  # the node has required tokens: a restore must keep requiring
    marker.write_text('{"required": true}\n')
    marker.chmod(0o600)
    return data


@pytest.fixture
def archive(source: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b.tar.zst"
    create_backup(source, out)
    return out


def _entries(archive: Path) -> list[tuple[str, bytes]]:
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as zr,
        tarfile.open(fileobj=zr, mode="r|") as tar,
    ):
        out = []
        for m in tar:
            fh = tar.extractfile(m)
            assert fh is not None
            out.append((m.name, fh.read()))
        return out


def _pack(out: Path, entries: list[tuple[str, bytes]]) -> None:
    with (
        out.open("wb") as raw,
        zstandard.ZstdCompressor().stream_writer(raw) as zw,
        tarfile.open(fileobj=zw, mode="w|") as tar,
    ):
        for name, body in entries:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


def _edit_store(archive: Path, out: Path, edit: Callable[[sqlite3.Connection], None]) -> None:
    """Rewrite the archive's store with ``edit`` and fix the manifest's size and SHA-256."""
    entries = dict(_entries(archive))
    work = out.parent / "edit.sqlite3"
    work.write_bytes(entries[f"data/{STORE_FILE}"])
    conn = sqlite3.connect(work)
    with conn:
        edit(conn)
    conn.execute("VACUUM")
    conn.close()
    body = work.read_bytes()
    manifest = json.loads(entries["manifest.json"])
    manifest["files"][STORE_FILE] = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
    entries["manifest.json"] = json.dumps(manifest).encode()
    entries[f"data/{STORE_FILE}"] = body
    _pack(out, list(entries.items()))


def _remove_newest(n: int) -> Callable[[sqlite3.Connection], None]:
    """Remove the ``n`` newest atoms and their index rows, and re-anchor each world's head
    to what is left: the store alone is consistent again."""

    def edit(conn: sqlite3.Connection) -> None:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM atoms ORDER BY seq DESC LIMIT ?", (n,))]
        marks = ",".join("?" * len(seqs))
        for table, col in (("tags", "seq"), ("links", "seq"), ("vectors", "seq"), ("fts", "rowid")):
            conn.execute(f"DELETE FROM {table} WHERE {col} IN ({marks})", seqs)
        conn.execute(f"DELETE FROM atoms WHERE seq IN ({marks})", seqs)
        conn.execute("DELETE FROM world_heads")
        conn.execute(
            "INSERT INTO world_heads(world, seq, chain, count) SELECT world, max(seq), chain, "
            "count(*) FROM (SELECT world, seq, chain FROM atoms UNION ALL "
            "SELECT world, seq, chain FROM tombstones) GROUP BY world"
        )

    return edit


def test_a_backup_missing_its_newest_atoms_is_refused_though_its_hash_was_fixed(
    archive: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "short.tar.zst"
    _edit_store(archive, bad, _remove_newest(10))
    # The edited store on its own checks clean: only the manifest can tell.
    probe = tmp_path / "probe"
    probe.mkdir()
    with pytest.raises(InvalidInputError) as err:
        extract_verified(bad, probe)
    assert "manifest" in err.value.message and "atoms" in err.value.message
    assert "nothing was restored" in err.value.message
    with pytest.raises(InvalidInputError):
        restore_backup(bad, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def _forge_newest(conn: sqlite3.Connection) -> None:
    """Give the newest atom another importance, with a valid checksum, chain and head."""
    row = conn.execute(f"SELECT {COLS} FROM atoms ORDER BY seq DESC LIMIT 1").fetchone()
    stored = row_to_stored(row)
    forged = replace(stored.atom, importance=0.99 if stored.atom.importance != 0.99 else 0.98)
    prev = conn.execute(
        "SELECT chain FROM (SELECT seq, chain FROM atoms WHERE world=? UNION ALL "
        "SELECT seq, chain FROM tombstones WHERE world=?) WHERE seq < ? ORDER BY seq DESC LIMIT 1",
        (forged.world, forged.world, stored.seq),
    ).fetchone()
    checksum = record_checksum(forged)
    chain = chain_next(prev[0] if prev else GENESIS, checksum)
    conn.execute(
        "UPDATE atoms SET importance=?, checksum=?, chain=? WHERE seq=?",
        (forged.importance, checksum, chain, stored.seq),
    )
    conn.execute("UPDATE world_heads SET chain=? WHERE world=?", (chain, forged.world))


def test_a_backup_whose_newest_atom_was_forged_is_refused(archive: Path, tmp_path: Path) -> None:
    # Every count is the same, the store checks clean, but a world's head is not the one
    # the backup was made with.
    bad = tmp_path / "forged.tar.zst"
    _edit_store(archive, bad, _forge_newest)
    probe = tmp_path / "probe"
    probe.mkdir()
    with pytest.raises(InvalidInputError) as err:
        extract_verified(bad, probe)
    assert "head" in err.value.message and "manifest" in err.value.message


def _bomb(out: Path, declared: int, actual: int) -> None:
    """A backup whose store entry is ``actual`` zero bytes, its manifest saying ``declared``."""
    manifest = {
        "format": "dwbase-backup",
        "format_version": 1,
        "files": {STORE_FILE: {"sha256": "0" * 64, "size": declared}},
        "counts": {"atoms": 0},
    }
    chunk = bytes(1 << 20)
    with (
        out.open("wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw) as zw,
        tarfile.open(fileobj=zw, mode="w|") as tar,
    ):
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        info = tarfile.TarInfo(f"data/{STORE_FILE}")
        info.size = actual

        class Zeros(io.RawIOBase):
            left = actual

            def readable(self) -> bool:
                return True

            def read(self, size: int = -1) -> bytes:
                n = min(self.left, len(chunk) if size < 0 else min(size, len(chunk)))
                self.left -= n
                return chunk[:n]

        tar.addfile(info, Zeros())


def _bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("declared", "actual", "why"),
    [
        (4096, 256 << 20, "4096"),  # the entry is larger than the manifest says
        (1 << 50, 256 << 20, "free"),  # the manifest itself claims more than the disk holds
    ],
)
def test_a_decompression_bomb_is_refused_before_it_writes_more_than_declared(
    tmp_path: Path, declared: int, actual: int, why: str
) -> None:
    bomb = tmp_path / "bomb.tar.zst"
    _bomb(bomb, declared, actual)
    assert bomb.stat().st_size < 100_000
    dest = tmp_path / "dest"
    dest.mkdir()
    started = time.monotonic()
    with pytest.raises(InvalidInputError) as err:
        extract_verified(bomb, dest)
    assert why in err.value.message
    assert _bytes_under(dest) <= 4096
    assert time.monotonic() - started < 2.0  # refused early, not after inflating 256 MiB


def test_an_oversized_manifest_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    bomb = tmp_path / "manifest-bomb.tar.zst"
    with (
        bomb.open("wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw) as zw,
        tarfile.open(fileobj=zw, mode="w|") as tar,
    ):
        info = tarfile.TarInfo("manifest.json")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(b" " * info.size))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidInputError, match=r"manifest.json is \d+ bytes, more than"):
        extract_verified(bomb, dest)


def test_restored_secret_files_stay_private(archive: Path, source: Path, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    restore_backup(archive, target)
    for secret in ("tokens.json", "auth.json"):
        assert (target / secret).read_bytes() == (source / secret).read_bytes()
        assert (target / secret).stat().st_mode & 0o777 == 0o600
    assert (target / STORE_FILE).stat().st_mode & 0o077 == 0  # a store holds memories too


def test_restore_refuses_while_another_process_has_the_store_open(
    archive: Path, source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "live"
    restore_backup(archive, target)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, dwbase; db = dwbase.open(sys.argv[1]); print('open', flush=True); "
            "sys.stdin.read(); db.close()",
            str(target),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(ConflictError) as err:
            restore_backup(archive, target, force=True)
        assert f"pid {holder.pid}" in err.value.message
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    result = restore_backup(archive, target, force=True)
    assert result["check"]["ok"]
    assert read_everything(target / STORE_FILE) == read_everything(source / STORE_FILE)
    with dwbase.open(target) as db:
        assert db.check().ok


def test_the_cli_caps_what_a_backup_may_write_and_refuses_a_short_one(
    archive: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from dwbase.cli import app

    from .conftest import assert_error, ok_json

    def cli(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), prog_name="dwbase")

    assert ok_json(cli("backup", "verify", str(archive), "--json"))["check"]["ok"]
    assert_error(
        cli("backup", "verify", str(archive), "--max-bytes", "1000"),
        "invalid_input",
        2,
        "more than the 1000 allowed",
    )
    target = tmp_path / "capped"
    result = cli(
        "--data-dir", str(target), "backup", "restore", str(archive), "--max-bytes", "1000"
    )
    assert_error(result, "invalid_input", 2, "nothing was restored")
    assert not target.exists()
    bad = tmp_path / "short.tar.zst"
    _edit_store(archive, bad, _remove_newest(10))
    assert_error(cli("backup", "verify", str(bad)), "invalid_input", 2, "its manifest says")

"""backup create → restore gives identical atoms; restore refuses bad archives and targets."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard

import dwbase
from conftest import CountingEmbedder
from dwbase.embed import HashingEmbedder
from dwbase.ops.backup import FORMAT_VERSION, create_backup, restore_backup

from .conftest import Run, assert_error, ok_json, remember


def _everything(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every atom of every world (archived and quarantined included), in order."""
    with dwbase.open(data_dir) as db:
        worlds = db.list_worlds(include_archived=True)
        out = {w: [a.to_dict() for a in db.replay(w)] for w in worlds}
        out["quarantine"] = [a.to_dict() for a in db.quarantine_list()]
        assert db.check().ok
    return out


@pytest.fixture
def populated(dw: Run, data_dir: Path) -> Path:
    first = remember(dw, "-w", "demo", "--text", "checkout latency 820ms", "--label", "latency")
    remember(dw, "-w", "demo", "--text", "fixed", "--link", f"supersedes:{first}")
    remember(dw, "-w", "ops/db", "--kind", "action", "--payload", '{"cmd": "restart"}')
    assert dw("remember", "-w", "demo", "--payload", '{"v": NaN}').exit_code == 3  # held
    ok_json(dw("world", "create", "old", "--json"))
    ok_json(dw("world", "archive", "old", "--json"))
    ok_json(dw("token", "create", "agent-1", "--json"))
    return data_dir


def test_backup_then_restore_gives_identical_atoms(
    populated: Path, cli: Run, tmp_path: Path
) -> None:
    archive = tmp_path / "b.tar.zst"
    made = ok_json(cli("--data-dir", str(populated), "backup", "create", str(archive), "--json"))
    manifest = made["manifest"]
    assert manifest["format_version"] == FORMAT_VERSION
    assert set(manifest["files"]) == {
        "dwbase.sqlite3",
        "vectors-reembedded.sqlite",
        "tokens.json",
        "auth.json",  # the store has required tokens: so does the restored one
    }
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert manifest["counts"]["atoms"] == 6 and manifest["counts"]["quarantined"] == 1
    assert manifest["index"]["embedder"] and manifest["index"]["worlds"]["demo"]["dim"]

    target = tmp_path / "restored"
    done = ok_json(cli("--data-dir", str(target), "backup", "restore", str(archive), "--json"))
    assert done["check"]["ok"] and done["check"]["records"] == 6
    assert _everything(target) == _everything(populated)
    for secret in ("tokens.json", "auth.json"):
        assert (target / secret).read_bytes() == (populated / secret).read_bytes()
    report = ok_json(cli("--data-dir", str(target), "storage", "check", "--json"))
    assert report["ok"] and report["problems"] == []
    answer = ok_json(cli("--data-dir", str(target), "ask", "-w", "demo", "checkout", "--json"))
    assert answer["hits"]


def test_backup_of_a_store_being_written_is_consistent(tmp_path: Path) -> None:
    src = tmp_path / "live"
    db = dwbase.open(src)
    db.remember("w", "a", "observation", {"text": "seed"})
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        while not stop.is_set():
            written.append(db.remember("w", "a", "observation", {"text": f"n{len(written)}"}))

    t = threading.Thread(target=writer)
    t.start()
    try:
        manifests = [create_backup(src, tmp_path / f"b{i}.tar.zst") for i in range(3)]
    finally:
        stop.set()
        t.join()
    try:
        for i, manifest in enumerate(manifests):
            target = tmp_path / f"r{i}"
            result = restore_backup(tmp_path / f"b{i}.tar.zst", target)
            assert result["check"]["ok"]
            with dwbase.open(target) as copy:
                got = [a.id for a in copy.replay("w")]
            # A consistent snapshot is a prefix of the live history, never a gap.
            assert got == [a.id for a in db.replay("w")][: len(got)]
            assert len(got) == manifest["counts"]["atoms"]
    finally:
        db.close()


def _repack(archive: Path, out: Path, edit: Any, extra: tuple[str, bytes] | None = None) -> None:
    """Rewrite ``archive`` with ``edit(name, bytes) -> bytes | None`` applied to each entry."""
    entries: list[tuple[str, bytes]] = []
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as zr,
        tarfile.open(fileobj=zr, mode="r|") as tar,
    ):
        for m in tar:
            fh = tar.extractfile(m)
            assert fh is not None
            entries.append((m.name, fh.read()))
    with (
        out.open("wb") as sink,
        zstandard.ZstdCompressor().stream_writer(sink) as zw,
        tarfile.open(fileobj=zw, mode="w|") as tar,
    ):
        for name, body in entries:
            new = edit(name, body)
            if new is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(new)
            tar.addfile(info, io.BytesIO(new))
        if extra is not None:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            tar.addfile(info, io.BytesIO(extra[1]))


def _corruptions(archive: Path, tmp: Path) -> dict[str, Path]:
    data = archive.read_bytes()
    cases: dict[str, Path] = {}

    def put(name: str, blob: bytes) -> None:
        p = tmp / f"{name}.tar.zst"
        p.write_bytes(blob)
        cases[name] = p

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    put("flipped-byte", bytes(flipped))
    put("truncated", data[: len(data) // 2])
    put("not-zstd", b"hello, I am not a backup")

    def tamper(name: str, body: bytes) -> bytes:
        if name == "data/dwbase.sqlite3":
            b = bytearray(body)
            b[-100] ^= 0x01
            return bytes(b)
        return body

    _repack(archive, tmp / "tampered.tar.zst", tamper)
    cases["tampered-file"] = tmp / "tampered.tar.zst"

    def old_format(name: str, body: bytes) -> bytes:
        if name == "manifest.json":
            m = json.loads(body)
            m["format_version"] = 99
            return json.dumps(m).encode()
        return body

    _repack(archive, tmp / "future.tar.zst", old_format)
    cases["unknown-format"] = tmp / "future.tar.zst"
    _repack(archive, tmp / "missing.tar.zst", lambda n, b: None if n.startswith("data/") else b)
    cases["missing-store"] = tmp / "missing.tar.zst"

    _repack(archive, tmp / "evil.tar.zst", lambda n, b: b, extra=("../evil.sh", b"rm -rf /"))
    cases["path-traversal"] = tmp / "evil.tar.zst"
    return cases


def test_restore_refuses_corrupted_archives_and_leaves_the_target_alone(
    populated: Path, cli: Run, tmp_path: Path
) -> None:
    archive = tmp_path / "good.tar.zst"
    ok_json(cli("--data-dir", str(populated), "backup", "create", str(archive), "--json"))
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for name, bad in _corruptions(archive, bad_dir).items():
        fresh = tmp_path / f"fresh-{name}"
        result = cli("--data-dir", str(fresh), "backup", "restore", str(bad))
        assert_error(result, "invalid_input", 2, "nothing was restored")
        assert not fresh.exists(), name
        assert_error(cli("backup", "verify", str(bad)), "invalid_input", 2)
        # --force on an existing store: the old contents survive a bad archive.
        before = _everything(populated)
        result = cli("--data-dir", str(populated), "backup", "restore", str(bad), "--force")
        assert_error(result, "invalid_input", 2)
        assert _everything(populated) == before, name
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".dwbase-")]
    assert leftovers == []


def test_restore_refuses_a_non_empty_target_without_force(
    populated: Path, cli: Run, tmp_path: Path
) -> None:
    archive = tmp_path / "b.tar.zst"
    ok_json(cli("--data-dir", str(populated), "backup", "create", str(archive), "--json"))
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    assert_error(
        cli("--data-dir", str(target), "backup", "restore", str(archive)),
        "conflict",
        1,
        "--force",
    )
    assert (target / "notes.txt").read_text() == "keep me"
    ok_json(cli("--data-dir", str(target), "backup", "restore", str(archive), "--force", "--json"))
    assert not (target / "notes.txt").exists()
    assert _everything(target) == _everything(populated)
    empty = tmp_path / "empty"
    empty.mkdir()
    ok_json(cli("--data-dir", str(empty), "backup", "restore", str(archive), "--json"))


def test_backup_create_refuses_to_overwrite_and_needs_a_store(
    populated: Path, cli: Run, tmp_path: Path
) -> None:
    archive = tmp_path / "b.tar.zst"
    ok_json(cli("--data-dir", str(populated), "backup", "create", str(archive), "--json"))
    assert_error(cli("--data-dir", str(populated), "backup", "create", str(archive)), "conflict", 1)
    ok_json(
        cli("--data-dir", str(populated), "backup", "create", str(archive), "--force", "--json")
    )
    assert_error(
        cli("--data-dir", str(tmp_path / "none"), "backup", "create", str(tmp_path / "x")),
        "not_found",
        1,
    )
    result = cli("--data-dir", str(populated), "backup", "create", str(tmp_path / "h.tar.zst"))
    assert result.exit_code == 0 and "backed up 6 atom(s)" in result.stdout


def _settled(db: dwbase.Engine, world: str) -> None:
    deadline = time.monotonic() + 20
    while not db.index_status(world)[0]["ready"]:
        assert time.monotonic() < deadline, "index did not settle"
        time.sleep(0.02)


def test_restore_keeps_vectors_re_embedded_after_an_embedder_change(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    texts = [f"note {i} about refunds and invoices number {i}" for i in range(40)]
    with dwbase.open(src, embedder=HashingEmbedder(dim=64)) as db:
        db.remember_batch([{"world": "w", "worker": "a", "payload": {"text": t}} for t in texts])
    with dwbase.open(src, embedder=CountingEmbedder(dim=32), reembed=True) as db:
        _settled(db, "w")  # the 40 old atoms were re-embedded with the new embedder
        before = [(h.atom.id, h.score) for h in db.ask("w", "refund invoice").hits]
    manifest = create_backup(src, tmp_path / "b.tar.zst")
    assert "vectors-reembedded.sqlite" in manifest["files"]
    restore_backup(tmp_path / "b.tar.zst", dst)
    again = CountingEmbedder(dim=32)
    with dwbase.open(dst, embedder=again) as db:
        _settled(db, "w")
        assert [(h.atom.id, h.score) for h in db.ask("w", "refund invoice").hits] == before
    assert again.texts == 1  # only the question: no atom was embedded again

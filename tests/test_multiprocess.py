"""Several processes on one store: the chain, observe, opening and replacing the store.

Every test here uses real SQLite files and, where it says "process", real OS processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dwbase
from dwbase.embed import HashingEmbedder
from dwbase.errors import ConflictError, StorageError
from dwbase.ops import backup

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str, *args: str, wait: bool = True) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if wait:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    return proc


# ------------------------------------------------------------------------- the hash chain


def test_two_engines_on_one_dir_keep_every_world_chain_valid(tmp_path: Path) -> None:
    a = dwbase.open(tmp_path)
    b = dwbase.open(tmp_path)
    try:
        for i in range(5):
            a.remember("w", "a", "observation", {"text": f"from a {i}"})
            b.remember("w", "b", "observation", {"text": f"from b {i}"})
        report = a.check()
        assert report.ok, report.problems
        assert report.records == 10
    finally:
        a.close()
        b.close()


WRITER = """
import sys, dwbase
db = dwbase.open(sys.argv[1])
name = sys.argv[2]
for i in range(int(sys.argv[3])):
    db.remember("shared" if i % 2 else name, name, "observation", {"text": f"{name} {i}"})
db.close()
"""


@pytest.mark.slow
def test_three_processes_write_a_thousand_atoms_each_and_check_is_clean(tmp_path: Path) -> None:
    dwbase.open(tmp_path).close()  # create the store once, so no writer races to make it
    procs = [_python(WRITER, str(tmp_path), f"p{n}", "1000", wait=False) for n in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with dwbase.open(tmp_path) as db:
        report = db.check()
        assert report.ok, report.problems[:5]
        assert report.records == 3000
        ids = [a.id for w in db.list_worlds() for a in db.replay(w)]
        assert len(ids) == len(set(ids)) == 3000


# ------------------------------------------------------------------------- observe


def test_observe_delivers_atoms_another_process_wrote_in_order(tmp_path: Path) -> None:
    with dwbase.open(tmp_path) as db:
        db.remember("demo", "me", "observation", {"text": "before"})
        handle = db.observe_start("demo")
        db.remember("demo", "me", "observation", {"text": "mine 1"})
        _python(
            """
            import sys, dwbase
            with dwbase.open(sys.argv[1]) as other:
                for i in range(3):
                    other.remember("demo", "other", "observation", {"text": f"theirs {i}"})
                other.remember("elsewhere", "other", "observation", {"text": "not demo"})
            """,
            str(tmp_path),
        )
        db.remember("demo", "me", "observation", {"text": "mine 2"})
        got = [a.payload["text"] for a in db.observe_poll(handle, 100)]
        assert got == ["mine 1", "theirs 0", "theirs 1", "theirs 2", "mine 2"]
        assert db.observe_poll(handle, 100) == []


def test_observe_resumes_after_a_cursor_with_no_gap_across_processes(tmp_path: Path) -> None:
    with dwbase.open(tmp_path) as db:
        first = db.remember("demo", "me", "observation", {"text": "a"})
        _python(
            """
            import sys, dwbase
            with dwbase.open(sys.argv[1]) as other:
                other.remember("demo", "other", "observation", {"text": "b"})
            """,
            str(tmp_path),
        )
        handle = db.observe_start("demo", after=first)
        _python(
            """
            import sys, dwbase
            with dwbase.open(sys.argv[1]) as other:
                other.remember("demo", "other", "observation", {"text": "c"})
            """,
            str(tmp_path),
        )
        got = [a.payload["text"] for a in db.observe_poll(handle, 100)]
        assert got == ["b", "c"]


# ------------------------------------------------------------------------- opening


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_opening_and_reading_a_store_changes_none_of_its_files(tmp_path: Path) -> None:
    with dwbase.open(tmp_path, embedder=HashingEmbedder(64)) as db:
        db.remember("demo", "a", "observation", {"text": "disk full on node 3"})
    before = _files(tmp_path)
    with dwbase.open(tmp_path) as db:  # no embedder given: the store's own is used
        assert db.embedder.dim == 64
        hits = db.ask("demo", "disk full").hits
        assert hits and hits[0].atom.payload["text"] == "disk full on node 3"
        db.replay("demo")
    after = _files(tmp_path)
    assert before.keys() == after.keys()
    changed = [name for name in before if before[name] != after[name]]
    assert changed == []


def test_opening_with_another_embedder_is_a_clear_error_that_says_how_to_reembed(
    tmp_path: Path,
) -> None:
    with dwbase.open(tmp_path, embedder=HashingEmbedder(64)) as db:
        db.remember("demo", "a", "observation", {"text": "x"})
    with pytest.raises(ConflictError, match="reembed=True") as info:
        dwbase.open(tmp_path, embedder=HashingEmbedder(128))
    assert "hashing:1:64" in info.value.message
    with dwbase.open(tmp_path, embedder=HashingEmbedder(128), reembed=True) as db:
        assert db.storage.meta_get("embedder") == "hashing:1:128"


def test_a_data_dir_whose_store_file_vanished_is_not_silently_recreated(tmp_path: Path) -> None:
    with dwbase.open(tmp_path) as db:
        db.remember("demo", "a", "observation", {"text": "x"})
    (tmp_path / "dwbase.sqlite3").unlink()
    with pytest.raises(StorageError, match="held a DWBase store"):
        dwbase.open(tmp_path)
    (tmp_path / "dwbase.sqlite3").write_bytes(b"")
    with pytest.raises(StorageError, match="held a DWBase store"):
        dwbase.open(tmp_path)


# ------------------------------------------------------------------------- replacing the store

HOLDER = """
import sys, time, dwbase
db = dwbase.open(sys.argv[1])
print("open", flush=True)
time.sleep(60)
"""


def _hold(path: Path) -> subprocess.Popen[str]:
    proc = _python(HOLDER, str(path), wait=False)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    return proc


def test_restore_refuses_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    src, target = tmp_path / "src", tmp_path / "target"
    with dwbase.open(src) as db:
        db.remember("demo", "a", "observation", {"text": "old"})
    archive = tmp_path / "b.tar.zst"
    backup.create_backup(src, archive)
    with dwbase.open(target) as db:
        db.remember("demo", "a", "observation", {"text": "newer"})
    holder = _hold(target)
    try:
        with pytest.raises(ConflictError, match=f"pid {holder.pid}"):
            backup.restore_backup(archive, target, force=True)
        with dwbase.open(target) as db:
            assert [a.payload["text"] for a in db.replay("demo")] == ["newer"]
    finally:
        holder.kill()
        holder.communicate()
    backup.restore_backup(archive, target, force=True)  # nobody holds it now
    with dwbase.open(target) as db:
        assert [a.payload["text"] for a in db.replay("demo")] == ["old"]


def test_compact_refuses_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    with dwbase.open(tmp_path) as db:
        db.remember("demo", "a", "observation", {"text": "x"})
        holder = _hold(tmp_path)
        try:
            with pytest.raises(ConflictError, match="compact"):
                db.compact()
        finally:
            holder.kill()
            holder.communicate()
        time.sleep(0.05)
        assert db.compact()["used_bytes_after"] > 0


def test_cli_ask_on_a_store_with_another_embedder_uses_it_and_changes_nothing(
    tmp_path: Path,
) -> None:
    with dwbase.open(tmp_path, embedder=HashingEmbedder(64)) as db:
        db.remember("demo", "a", "observation", {"text": "disk full on node 3"})
    before = _files(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "dwbase", "--data-dir", str(tmp_path), "ask", "-w", "demo",
         "--json", "disk full"],
        env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "disk full on node 3" in out.stdout
    assert _files(tmp_path) == before
    with dwbase.open(tmp_path) as db:
        assert db.storage.meta_get("embedder") == "hashing:1:64"


def test_cli_observe_prints_atoms_another_process_remembers(tmp_path: Path) -> None:
    with dwbase.open(tmp_path) as db:
        first = db.remember("demo", "w", "observation", {"text": "start"})
    env = {**os.environ, "PYTHONPATH": SRC}
    observer = subprocess.Popen(
        [sys.executable, "-m", "dwbase", "--data-dir", str(tmp_path), "observe", "-w", "demo",
         "--after", first, "--count", "3", "--timeout", "30", "--interval", "0.05", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Written while the observer starts, subscribes and polls: --after leaves no gap.
    with dwbase.open(tmp_path) as db:
        written = []
        for i in range(3):
            written.append(db.remember("demo", "w", "observation", {"text": f"t{i}"}))
            time.sleep(0.3)
    out, err = observer.communicate(timeout=60)
    assert observer.returncode == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == written


def test_a_world_archived_by_another_process_refuses_writes_here(tmp_path: Path) -> None:
    with dwbase.open(tmp_path) as db:
        db.remember("demo", "a", "observation", {"text": "x"})
        assert db.world_status("demo") == "active"  # now cached here
        _python(
            """
            import sys, dwbase
            with dwbase.open(sys.argv[1]) as other:
                other.archive_world("demo")
            """,
            str(tmp_path),
        )
        with pytest.raises(ConflictError, match="archived"):
            db.remember("demo", "a", "observation", {"text": "y"})


def test_atoms_another_process_dropped_leave_this_process_caches(tmp_path: Path) -> None:
    with dwbase.open(tmp_path, trust={"shady": 0.0}) as db:
        held = db.remember("demo", "shady", "observation", {"text": "buy now"}, importance=0.95)
        assert held.quarantined
        keep = db.remember("demo", "a", "observation", {"text": "buy groceries"})
        assert [h.atom.id for h in db.ask("demo", "buy").hits] == [keep]
        _python(
            """
            import sys, dwbase
            with dwbase.open(sys.argv[1]) as other:
                other.quarantine_release(sys.argv[2])
            """,
            str(tmp_path),
            str(held),
        )
        assert {h.atom.id for h in db.ask("demo", "buy").hits} == {keep, str(held)}

"""The append-only log adapter beyond the shared contract: recovery, compaction, one opener.

The contract suite (``tests/contract``) runs every Storage test against the log adapter too;
these tests cover what only a log has: a torn tail, a corrupt frame, compaction, and kill -9.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dwbase
from contract.conftest import RecordMaker
from dwbase.errors import ConflictError
from dwbase.model import FilterSpec
from dwbase.storage.log import LOG_FILE, LogStorage, read_frames

OPEN = FilterSpec()


def _ids(store: LogStorage, world: str = "w") -> list[str]:
    return [s.atom.id for s in store.scan(world, OPEN)]


def test_a_torn_tail_is_cut_off_on_reopen_and_the_store_keeps_working(tmp_path: Path) -> None:
    rec = RecordMaker()
    store = LogStorage(str(tmp_path))
    store.append([rec(), rec()])
    store.append([rec(), rec(), rec()])
    store.close()
    path = tmp_path / LOG_FILE
    data = path.read_bytes()
    # A crash in the middle of the second batch's write: half its frame reached the disk.
    first_end = data.index(b"\n") + 1
    path.write_bytes(data[: first_end + (len(data) - first_end) // 2])

    reopened = LogStorage(str(tmp_path))
    try:
        assert _ids(reopened) == ["atom-00001", "atom-00002"]  # the torn batch: all or nothing
        assert path.stat().st_size == first_end
        more = reopened.append([rec()])
        assert more[0].seq == 3
        report = reopened.check()
        assert report.ok, report.problems
        assert report.records == 3
    finally:
        reopened.close()


def test_a_corrupt_frame_before_good_ones_is_reported_not_dropped_silently(
    tmp_path: Path,
) -> None:
    rec = RecordMaker()
    store = LogStorage(str(tmp_path))
    for _ in range(3):
        store.append([rec()])
    store.close()
    path = tmp_path / LOG_FILE
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"hello", b"HELLO")  # one flipped byte range, crc now wrong
    path.write_bytes(b"\n".join(lines))

    reopened = LogStorage(str(tmp_path))
    try:
        assert _ids(reopened) == ["atom-00001", "atom-00003"]
        assert path.stat().st_size == len(b"\n".join(lines))  # nothing cut: not a torn tail
        report = reopened.check()
        assert not report.ok
        assert any("log line 2" in p and "checksum" in p for p in report.problems)
    finally:
        reopened.close()


def test_compaction_drops_deleted_payloads_and_keeps_the_chain(tmp_path: Path) -> None:
    rec = RecordMaker()
    store = LogStorage(str(tmp_path))
    try:
        stored = store.append([rec(text="x" * 5000) for _ in range(10)])
        store.append([rec("w2", labels=["policy:retention_days=3"], vector=[1.0, 0.0])])
        store.delete([s.seq for s in stored[:8]])
        store.set_quarantine(stored[9].seq, "burst")
        store.meta_set("embedder", "hashing:1:256")
        before = (_ids(store), _ids(store, "w2"), store.quarantined(), store.load_vectors("w2"))
        result = store.compact()
        assert result["log_bytes_after"] < result["log_bytes_before"] / 3
        assert store.check().ok
        # Deleted ids stay deleted, and new atoms continue seqs and chains.
        assert store.append([rec(atom_id=stored[0].atom.id)]) == []
        assert store.append([rec()])[0].seq == 12
    finally:
        store.close()

    reopened = LogStorage(str(tmp_path))
    try:
        after = (
            _ids(reopened)[:-1],
            _ids(reopened, "w2"),
            reopened.quarantined(),
            reopened.load_vectors("w2"),
        )
        assert after == before
        assert reopened.meta_get("embedder") == "hashing:1:256"
        report = reopened.check()
        assert report.ok, report.problems
        assert report.records == 4
    finally:
        reopened.close()


def test_a_compaction_cut_short_leaves_the_old_log(tmp_path: Path) -> None:
    rec = RecordMaker()
    store = LogStorage(str(tmp_path))
    store.append([rec(), rec()])
    store.close()
    (tmp_path / (LOG_FILE + ".compact")).write_bytes(b'{"op":"app')  # the crash's leftover
    reopened = LogStorage(str(tmp_path))
    try:
        assert _ids(reopened) == ["atom-00001", "atom-00002"]
        assert not (tmp_path / (LOG_FILE + ".compact")).exists()
    finally:
        reopened.close()


def test_a_second_opener_of_a_log_store_is_refused(tmp_path: Path) -> None:
    store = LogStorage(str(tmp_path))
    try:
        with pytest.raises(ConflictError, match="open in another process"):
            LogStorage(str(tmp_path))
    finally:
        store.close()
    LogStorage(str(tmp_path)).close()  # free again once closed


def test_the_engine_runs_on_a_log_store_across_reopens(tmp_path: Path) -> None:
    with dwbase.Engine(LogStorage(str(tmp_path))) as db:
        aid = db.remember("demo", "a", "observation", text="checkout latency 820ms")
        db.remember("demo", "a", "observation", text="the cache was cold")
    with dwbase.Engine(LogStorage(str(tmp_path))) as db:
        assert db.ask("demo", "checkout latency").hits[0].atom.id == aid
        assert db.check().ok


CHILD = r"""
import sys
import dwbase
from dwbase.storage.log import LogStorage

db = dwbase.Engine(LogStorage(sys.argv[1]))
out = sys.stdout
out.write("ready\n")
out.flush()
i = 0
while True:
    i += 1
    if i % 4 == 0:
        ids = db.remember_batch([
            {"world": "crash", "worker": "w", "kind": "observation",
             "payload": {"text": f"batch {i} part {j}"}} for j in range(20)
        ])
        out.write("".join(f"{x}\n" for x in ids))
    else:
        out.write(db.remember("crash", "w", "observation", text=f"single {i}") + "\n")
    out.flush()
"""


@pytest.mark.slow
def test_acknowledged_atoms_of_a_log_store_survive_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    acked: list[str] = []
    for run in range(3):
        out = tmp_path / f"run{run}.out"
        with out.open("wb") as sink:
            child = subprocess.Popen(
                [sys.executable, str(script), str(data_dir)],
                stdout=sink,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            deadline = time.monotonic() + 20.0
            while not out.read_bytes().startswith(b"ready\n"):
                assert child.poll() is None, "the child exited early"
                assert time.monotonic() < deadline, "the child never became ready"
                time.sleep(0.01)
            time.sleep(0.15 + 0.1 * run)
            child.send_signal(signal.SIGKILL)
            child.wait()
        lines = out.read_text(encoding="utf-8").split("\n")[:-1]
        acked.extend(x for x in lines if len(x) == 36)
    assert len(acked) > 20
    with dwbase.Engine(LogStorage(str(data_dir))) as db:
        missing = [a for a in acked if db.storage.get(a) is None]
        assert not missing, f"{len(missing)} acknowledged atoms lost, e.g. {missing[:3]}"
        report = db.check()
        assert report.ok, report.problems
        assert read_frames(str(data_dir / LOG_FILE)).torn_tail is False


def test_deleted_atoms_leave_used_bytes_and_the_file_is_compacted_in_time(
    tmp_path: Path,
) -> None:
    rec = RecordMaker()
    store = LogStorage(str(tmp_path))
    try:
        stored = store.append([rec(text="x" * 4000) for _ in range(400)])  # about 1.7 MB
        full = store.used_bytes()
        assert full > 1_500_000
        store.delete([s.seq for s in stored[:100]])
        assert store.used_bytes() < full * 0.8  # counted out at once, though still in the file
        assert (tmp_path / LOG_FILE).stat().st_size > full
        store.delete([s.seq for s in stored[100:350]])
        # Now the dead bytes outgrow the live ones: the delete compacted the file.
        assert (tmp_path / LOG_FILE).stat().st_size < full * 0.3
        report = store.check()
        assert report.ok and report.records == 50
    finally:
        store.close()

"""Corruption suite: seeded random byte flips of a closed store and of backups.

Each flip lands on a fresh copy of a small store (about 100 atoms over three worlds, with
labels, flags, links, caller and embedder vectors, held atoms and a tombstone). For every flip
that changes what a read returns (replay of every world, held atoms included, get of every id,
counts), ``storage check`` must report a problem, or opening must fail with a clear
:class:`~dwbase.errors.StorageError`. A backup with a flipped byte must be refused, or restore
exactly the atoms it was made from.

The summary printed at the end (``pytest -s``) gives the counts; set ``DWBASE_CORRUPTION_SEED``
to try other flips.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dwbase.errors import InvalidInputError, StorageError
from dwbase.model import FilterSpec
from dwbase.ops.backup import create_backup, extract_verified
from dwbase.storage.sqlite import SQLiteStorage
from sample_store import STORE_FILE, WORLDS, build_sample_store, read_everything

SEED = int(os.environ.get("DWBASE_CORRUPTION_SEED", "20240611"))
STORE_FLIPS = 200
BACKUP_FLIPS = 50

pytestmark = pytest.mark.slow


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)

    def summary(self, title: str) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return f"{title} (seed {SEED}): {parts}"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_store(tmp_path_factory.mktemp("pristine") / "data")


def _flip(data: bytes, rng: random.Random) -> tuple[bytes, int, int]:
    at = rng.randrange(len(data))
    mask = rng.randrange(1, 256)
    out = bytearray(data)
    out[at] ^= mask
    return bytes(out), at, mask


def _reads(path: Path) -> Any:
    """What reads return, or the kind of error a read raised."""
    try:
        return read_everything(path)
    except StorageError as exc:
        return ("error", exc.code)
    except Exception as exc:  # a read that fails without a clear error is still a change
        return ("error", f"unclear {type(exc).__name__}")


def _ask_inputs(path: Path) -> Any:
    """What ask reads besides atoms: lexical hits and index vectors (not asserted)."""
    try:
        store = SQLiteStorage(str(path))
    except StorageError:
        return None
    try:
        return [
            (store.search_text(w, ["disk", "latency", "note"], 50), store.load_vectors(w))
            for w in WORLDS
        ]
    except Exception as exc:
        return type(exc).__name__
    finally:
        store.close()


def test_byte_flips_in_a_closed_store_that_change_a_read_are_all_detected(
    pristine: Path, tmp_path: Path
) -> None:
    baseline = read_everything(pristine)
    ask_baseline = _ask_inputs(pristine)
    data = pristine.read_bytes()
    rng = random.Random(SEED)
    tally = Tally()
    for i in range(STORE_FLIPS):
        flipped, at, mask = _flip(data, rng)
        d = tmp_path / f"flip{i}"
        d.mkdir()
        path = d / STORE_FILE
        path.write_bytes(flipped)
        tally.counts["flips"] += 1
        try:
            store = SQLiteStorage(str(path))
        except StorageError:
            tally.counts["open refused (StorageError)"] += 1
            shutil.rmtree(d)
            continue
        try:
            report = store.check()
        finally:
            store.close()
        reads = _reads(path)
        changed = reads != baseline
        if isinstance(reads, tuple):
            tally.counts[f"a read raised {reads[1]}"] += 1
        if not report.ok:
            tally.counts["detected by check"] += 1
        if changed:
            tally.counts["changed a read"] += 1
            if report.ok:
                tally.missed.append(f"byte {at} ^ {mask:#04x}")
        elif report.ok:
            tally.counts["undetected, reads unchanged"] += 1
            if _ask_inputs(path) != ask_baseline:
                tally.counts["undetected, ask inputs changed (embedder vectors)"] += 1
        shutil.rmtree(d)
    print("\n" + tally.summary(f"store byte flips on a {len(data)}-byte store"))
    assert tally.counts["flips"] == STORE_FLIPS
    assert tally.missed == [], f"flips that changed a read and passed check: {tally.missed}"
    unclear = [k for k in tally.counts if "unclear" in k]
    assert unclear == [], "reads must fail with a StorageError on a damaged store"


def test_byte_flips_in_a_backup_are_refused_or_restore_the_same_atoms(
    pristine: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(pristine, src / STORE_FILE)
    archive = tmp_path / "b.tar.zst"
    create_backup(src, archive)
    baseline = read_everything(src / STORE_FILE)
    data = archive.read_bytes()
    rng = random.Random(SEED + 1)
    tally = Tally()
    for i in range(BACKUP_FLIPS):
        flipped, at, mask = _flip(data, rng)
        bad = tmp_path / f"flip{i}.tar.zst"
        bad.write_bytes(flipped)
        out = tmp_path / f"out{i}"
        out.mkdir()
        tally.counts["flips"] += 1
        try:
            extract_verified(bad, out)
        except InvalidInputError:
            tally.counts["refused"] += 1
        else:
            tally.counts["accepted"] += 1
            if read_everything(out / STORE_FILE) != baseline:
                tally.missed.append(f"byte {at} ^ {mask:#04x}")
        shutil.rmtree(out)
        bad.unlink()
    print("\n" + tally.summary(f"backup byte flips on a {len(data)}-byte archive"))
    assert tally.counts["flips"] == BACKUP_FLIPS
    assert tally.missed == [], f"accepted backups that restore other atoms: {tally.missed}"


def test_the_sample_store_reads_the_same_after_a_copy(pristine: Path, tmp_path: Path) -> None:
    # The suite's baseline is meaningful: a plain copy reads the same, and reads do see atoms.
    copy = tmp_path / STORE_FILE
    copy.write_bytes(pristine.read_bytes())
    got = read_everything(copy)
    assert got == read_everything(pristine)
    assert got["count"] >= 90 and len(got["worlds"]) == 3
    store = SQLiteStorage(str(copy))
    try:
        assert store.scan("alpha", FilterSpec(), quarantined=True)
    finally:
        store.close()

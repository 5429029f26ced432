"""An acknowledged atom survives kill -9 of the process that wrote it (SQLite, durability normal).

A child process remembers in a loop (single remembers and batches) and prints each id only
after the call returned. The parent kills it with SIGKILL at random moments, many times over
the same data directory, then reopens the store: every printed id must be there and
``check()`` must find no broken checksum, hash chain or index.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dwbase

pytestmark = pytest.mark.slow

KILLS = 24
TIME_BUDGET_S = 45.0

# The child: open, say "ready", then write until killed. An id is printed (and flushed) only
# after remember/remember_batch returned, so every printed id was acknowledged.
CHILD = r"""
import random, sys
import dwbase

data_dir, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
words = ("checkout latency payment deploy rollback cache miss disk queue retry timeout "
         "worker node shard replica index vacuum lock spike error budget alert").split()
db = dwbase.open(data_dir)
out = sys.stdout
out.write("ready\n")
out.flush()
i = 0
while True:
    i += 1
    world = "crash:" + rng.choice(("a", "b", "c"))
    text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + f" #{seed}-{i}"
    if i % 5 == 0:
        batch = [
            {"world": world, "worker": f"w{rng.randint(0, 9)}", "kind": "observation",
             "payload": {"text": f"{text} part {j}"}, "importance": rng.random(),
             "labels": ["batch"]}
            for j in range(rng.randint(2, 40))
        ]
        ids = db.remember_batch(batch)
        out.write("".join(f"{x}\n" for x in ids))
    else:
        aid = db.remember(world, f"w{rng.randint(0, 9)}", "observation", {"text": text},
                          importance=rng.random(), labels=["single"])
        out.write(f"{aid}\n")
    out.flush()
"""


def _acknowledged(log: Path) -> list[str]:
    # Only whole lines count: a line cut short by the kill was never fully acknowledged.
    text = log.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")[:-1]
    return [ln for ln in lines if ln != "ready" and len(ln) == 36]


def test_acknowledged_atoms_survive_repeated_sigkill(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    data_dir = tmp_path / "store"
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    acked: list[str] = []
    runs_with_writes = 0
    started = time.monotonic()
    for run in range(KILLS):
        log = tmp_path / f"run{run}.out"
        with log.open("wb") as sink:
            child = subprocess.Popen(
                [sys.executable, str(script), str(data_dir), str(rng.randrange(1 << 30))],
                stdout=sink,
                stderr=subprocess.PIPE,
                env=env,
            )
            try:
                if run % 6 == 5:
                    # Now and then kill early, possibly while the store is being opened.
                    time.sleep(rng.uniform(0.0, 0.8))
                else:
                    deadline = time.monotonic() + 20.0
                    while not log.read_bytes().startswith(b"ready\n"):
                        if child.poll() is not None:
                            err = child.stderr.read().decode() if child.stderr else ""
                            pytest.fail(f"child exited early (seed {seed}, run {run}):\n{err}")
                        if time.monotonic() > deadline:
                            pytest.fail(f"child never became ready (seed {seed}, run {run})")
                        time.sleep(0.01)
                    time.sleep(rng.uniform(0.0, 0.6))
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait()
                if child.stderr:
                    child.stderr.close()
        assert child.returncode == -signal.SIGKILL, (
            f"child ended on its own with {child.returncode} (seed {seed}, run {run})"
        )
        ids = _acknowledged(log)
        runs_with_writes += bool(ids)
        acked.extend(ids)
        if time.monotonic() - started > TIME_BUDGET_S and run >= 20:
            break

    assert run + 1 >= 20
    assert runs_with_writes >= 10, f"too few runs wrote anything (seed {seed})"
    assert len(set(acked)) == len(acked), "an id was acknowledged twice"

    print(f"seed {seed}: {run + 1} kills, {len(acked)} acknowledged ids")
    with dwbase.open(data_dir) as db:
        missing = []
        for aid in acked:
            try:
                db.get(aid)
            except dwbase.NotFoundError:
                missing.append(aid)
        assert not missing, (
            f"{len(missing)} of {len(acked)} acknowledged atoms lost after kill -9 "
            f"(seed {seed}), e.g. {missing[:3]}"
        )
        assert db.stats()["atoms"] >= len(acked)
        report = db.check()
        assert report.ok, f"check failed after kill -9 (seed {seed}): {report.problems[:5]}"
        assert report.problems == []
        assert report.records == db.stats()["atoms"]
        # The store still takes writes after all those crashes.
        after = db.remember("crash:a", "w0", "observation", {"text": "still alive"})
        assert db.get(after).payload == {"text": "still alive"}
        assert db.check().ok

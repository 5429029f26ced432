"""Soak: a mixed load for a while, failing if anything grows without bound.

``run_soak`` drives one store (an embedded :class:`~dwbase.Engine` or a node's
:class:`~dwbase.Client`: anything with the :class:`~dwbase.DWBaseAPI` methods) from two
threads for ``duration_s`` seconds: a *writer* (single remembers, batches of 20, and gc every
few seconds, under a ``min_importance`` policy so gc really evicts) and a *reader* (asks,
replays, and polls of an observe subscription that stays open). Every ``interval_s`` it takes
a sample: ask and remember p95 over the interval, operations done, atoms delivered to the
observer, and, of this process, resident memory, open file descriptors and threads, plus the
store's WAL size from ``health()``.

The run passes when nothing grows without bound. Samples of the first quarter are the
baseline (warm-up: caches fill, the WAL reaches its checkpoint size); the last quarter is
compared with it:

* latency — the last quarter's median ask (and remember) p95 at most ``3x`` the baseline's
  plus 25 ms (a machine shared with other work is noisy; an unbounded queue or a lock
  convoy grows far past that);
* threads — at most 2 more than the baseline's most; file descriptors at most 8 more;
* WAL — at most the baseline's most, or the size past which the store truncates it (64 MiB)
  if that is more, plus 64 MiB (checkpoints keep it near a fixed size, but a short run may end
  before the first one: with 16 KiB pages a few seconds of writes fill 64 MiB);
* resident memory — what the store holds grows with it, so the last half may grow by no
  more than the first half did plus 64 MiB (a leak grows at least as fast late as early).

Any operation that fails is counted and fails the run as well. Resident memory, descriptors
and threads are those of this process: for a node (``--api``) only latency, errors and the
node's WAL are checked.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..protocol import DWBaseAPI
from ..storage.sqlite_health import WAL_LIMIT_BYTES

_VOCABULARY = (
    "checkout latency payment deploy rollback cache disk queue retry timeout worker node "
    "shard replica index lock spike error alert customer invoice refund order search login "
    "session token email webhook billing plan tenant region cluster build pipeline release "
    "canary flag metric dashboard incident outage recovery failover backup restore snapshot "
    "migration schema query memory leak cpu throttle dns certificate gateway proxy service "
    "request stream consumer topic offset lag backlog scheduler ticket pager runbook owner "
    "team review "
)
WORDS = _VOCABULARY.split()


@dataclass(slots=True)
class Sample:
    """One interval of the run."""

    t_s: float
    ops: int
    errors: int
    ask_p95_ms: float | None
    remember_p95_ms: float | None
    observed: int
    rss_bytes: int | None
    fds: int | None
    threads: int
    wal_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SoakReport:
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "duration_s": round(self.duration_s, 2),
            "totals": self.totals,
            "first_error": self.first_error,
            "checks": self.checks,
            "samples": [s.to_dict() for s in self.samples],
        }


def rss_bytes() -> int | None:
    """This process's resident memory (Linux /proc; ``None`` elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


class _Load:
    """The two threads' shared counters (each list is swapped out under the lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ask_s: list[float] = []
        self.remember_s: list[float] = []
        self.ops = 0
        self.errors = 0
        self.observed = 0
        self.totals: dict[str, int] = {}
        self.first_error: str | None = None

    def done(self, op: str, seconds: float | None = None) -> None:
        with self.lock:
            self.ops += 1
            self.totals[op] = self.totals.get(op, 0) + 1
            if seconds is not None:
                (self.ask_s if op == "ask" else self.remember_s).append(seconds)

    def failed(self, op: str, exc: BaseException) -> None:
        with self.lock:
            self.errors += 1
            self.totals["errors"] = self.totals.get("errors", 0) + 1
            if self.first_error is None:
                self.first_error = f"{op}: {type(exc).__name__}: {exc}"

    def take(self) -> tuple[list[float], list[float], int, int, int]:
        with self.lock:
            out = (self.ask_s, self.remember_s, self.ops, self.errors, self.observed)
            self.ask_s, self.remember_s = [], []
            self.ops = self.errors = self.observed = 0
            return out


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 20)))


def _writer(db: DWBaseAPI, world: str, load: _Load, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    last_gc = time.monotonic()

    def atom() -> dict[str, Any]:
        return {
            "world": world,
            "worker": f"soak-{rng.randrange(4)}",
            "payload": {"text": _text(rng)},
            "importance": round(rng.random(), 3),
        }

    while not stop.is_set():
        op = "remember"
        try:
            if time.monotonic() - last_gc >= 2.0:
                op = "gc"
                db.gc()
                last_gc = time.monotonic()
                load.done(op)
            elif rng.random() < 0.1:
                op = "remember_batch"
                db.remember_batch([atom() for _ in range(20)])
                load.done(op)
            else:
                t0 = time.perf_counter()
                db.remember_atom(atom())
                load.done(op, time.perf_counter() - t0)
        except Exception as exc:  # counted, and the run fails; keep the load going
            load.failed(op, exc)
        time.sleep(0.002)  # a busy agent, not a bulk import: leave room for the reader


def _reader(db: DWBaseAPI, world: str, load: _Load, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    handle = db.observe_start(world, capacity=10_000)
    try:
        while not stop.is_set():
            r = rng.random()
            op = "ask" if r < 0.6 else "replay" if r < 0.8 else "observe_poll"
            try:
                if op == "ask":
                    t0 = time.perf_counter()
                    db.ask(world, " ".join(rng.choice(WORDS) for _ in range(3)))
                    load.done(op, time.perf_counter() - t0)
                elif op == "replay":
                    db.replay(world, limit=50)
                    load.done(op)
                else:
                    got = db.observe_poll(handle, max=1000)
                    with load.lock:
                        load.observed += len(got)
                    load.done(op)
            except Exception as exc:
                load.failed(op, exc)
    finally:
        try:
            db.observe_stop(handle)
        except Exception as exc:
            load.failed("observe_stop", exc)


def run_soak(
    db: DWBaseAPI,
    *,
    duration_s: float,
    interval_s: float = 5.0,
    world: str = "soak",
    local_process: bool = True,
    seed: int = 1,
    on_sample: Callable[[Sample], None] | None = None,
) -> SoakReport:
    """Drive ``db`` with the mixed load for ``duration_s`` seconds; see the module doc."""
    interval_s = max(0.2, min(interval_s, duration_s / 4))
    db.set_policy(world, min_importance=0.3)  # gc evicts the less important atoms
    load = _Load()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(db, world, load, stop, seed), name="soak-writer"),
        threading.Thread(
            target=_reader, args=(db, world, load, stop, seed + 1), name="soak-reader"
        ),
    ]
    report = SoakReport(duration_s=duration_s)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= duration_s:
                break
            time.sleep(min(interval_s, duration_s - elapsed))
            asks, remembers, ops, errors, observed = load.take()
            try:
                wal = db.health().get("wal_bytes")
            except Exception as exc:
                load.failed("health", exc)
                wal = None
            sample = Sample(
                t_s=round(time.monotonic() - t0, 2),
                ops=ops,
                errors=errors,
                ask_p95_ms=_p95(asks),
                remember_p95_ms=_p95(remembers),
                observed=observed,
                rss_bytes=rss_bytes() if local_process else None,
                fds=open_fds() if local_process else None,
                threads=threading.active_count(),
                wal_bytes=wal if isinstance(wal, int) else None,
            )
            report.samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    report.totals = dict(load.totals)
    report.first_error = load.first_error
    report.checks = judge(report.samples, errors=load.totals.get("errors", 0))
    return report


def _values(samples: list[Sample], get: Callable[[Sample], float | int | None]) -> list[float]:
    return [float(v) for s in samples if (v := get(s)) is not None]


def judge(samples: list[Sample], *, errors: int = 0) -> list[dict[str, Any]]:
    """The checks of a run (see the module doc): each ``{check, ok, detail}``."""
    checks: list[dict[str, Any]] = [
        {"check": "errors", "ok": errors == 0, "detail": f"{errors} operations failed"}
    ]
    n = len(samples)
    if n < 4:
        checks.append(
            {"check": "samples", "ok": False, "detail": f"{n} samples; at least 4 are needed"}
        )
        return checks
    q = max(1, n // 4)
    first, last = samples[:q], samples[-q:]

    for name, get in (
        ("ask p95", lambda s: s.ask_p95_ms),
        ("remember p95", lambda s: s.remember_p95_ms),
    ):
        a, b = _values(first, get), _values(last, get)
        if not a or not b:
            continue
        base, late = statistics.median(a), statistics.median(b)
        limit = 3 * base + 25
        checks.append(
            {
                "check": f"{name} latency",
                "ok": late <= limit,
                "detail": f"{late:.1f} ms at the end vs {base:.1f} ms at first "
                f"(limit {limit:.1f} ms)",
            }
        )
    bounded: list[tuple[str, Callable[[Sample], float | int | None], float, str]] = [
        ("threads", lambda s: s.threads, 2, ""),
        ("file descriptors", lambda s: s.fds, 8, ""),
        ("WAL", lambda s: s.wal_bytes, 64 * 2**20, " bytes"),
    ]
    for name, get, slack, unit in bounded:
        a, b = _values(first, get), _values(last, get)
        if not a or not b:
            continue
        base = max(max(a), WAL_LIMIT_BYTES) if name == "WAL" else max(a)
        ok = max(b) <= base + slack
        floor = f", {WAL_LIMIT_BYTES}{unit} when less" if name == "WAL" else ""
        checks.append(
            {
                "check": name,
                "ok": ok,
                "detail": f"at most {max(b):.0f}{unit} at the end vs {max(a):.0f}{unit} at "
                f"first{floor} (slack {slack:.0f})",
            }
        )
    rss = [s.rss_bytes for s in samples]
    if all(r is not None for r in rss):
        values = [float(r) for r in rss if r is not None]
        mid = values[n // 2 - 1] if n // 2 else values[0]
        early = mid - values[0]
        late = values[-1] - mid
        limit = max(0.0, early) + 64 * 2**20
        checks.append(
            {
                "check": "resident memory",
                "ok": late <= limit,
                "detail": f"grew {late / 2**20:.1f} MiB in the second half, "
                f"{early / 2**20:.1f} MiB in the first (limit {limit / 2**20:.1f} MiB)",
            }
        )
    return checks

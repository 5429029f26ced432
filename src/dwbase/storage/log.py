"""Append-only log storage: the WASI component's store, and a pure-Python one anywhere else.

The whole store is one file of JSON lines, ``<data_dir>/atoms.log``. Each line is one frame::

    {"op": "append", "records": [...]}<TAB>1a2b3c4d<LF>

the JSON text, a tab, and the CRC-32 of the JSON text's UTF-8 bytes in hex (JSON escapes every
tab inside strings, so the last tab of a line always starts the checksum). A frame is written
with one ``write`` and is the unit of atomicity: a batch of atoms is one frame, so a crash
keeps all of it or none of it.

Frames: ``append`` (records with their seq, record checksum and per-world chain link, exactly
the ledger SQLite keeps), ``quarantine`` (a held atom is released or held), ``delete``,
``meta``, and ``gone`` (the ledger entry of an atom removed before a compaction, so the hash
chain still verifies). Opening replays the frames into the in-memory indexes of
:class:`~dwbase.storage.memory.MemoryStorage`, which answers every read.

Recovery: a frame cut short by a crash (no final newline, or a checksum that fails on the last
line) is a *torn tail*: opening cuts it off, since it was never acknowledged. A bad frame with
good frames after it is corruption, not a torn write: opening keeps what it can read and
:meth:`LogStorage.check` reports the bad line.

Compaction (:meth:`LogStorage.compact`) rewrites the log as the current state (deleted
payloads and replaced quarantine/meta frames dropped, ledger entries kept) into a temporary
file and renames it over the log, so a crash leaves either the old log or the new one.

One process holds a log store at a time (an exclusive ``flock`` where ``fcntl`` exists; the
WASI component runs one instance per data directory).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConflictError, InvalidInputError, StorageError
from ..model import Atom, Link, StoredAtom
from .base import GENESIS, CheckReport, NewRecord, chain_next, record_checksum
from .memory import MemoryStorage, Staged

try:  # pragma: no cover - depends on the platform
    import fcntl
except ImportError:  # pragma: no cover - WASI, Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("dwbase.storage.log")

LOG_FILE = "atoms.log"


def log_path(data_dir: str) -> str:
    return os.path.join(data_dir, LOG_FILE)


def encode_frame(frame: dict[str, Any]) -> bytes:
    body = json.dumps(frame, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = body.encode("utf-8")
    return data + b"\t" + f"{binascii.crc32(data):08x}".encode("ascii") + b"\n"


@dataclass
class Scan:
    """What reading a log file found: good frames (with their line numbers) and problems."""

    frames: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # each good frame's bytes on disk
    good_end: int = 0  # byte offset just past the last good frame
    torn_tail: bool = False
    problems: list[str] = field(default_factory=list)


def read_frames(path: str) -> Scan:
    """Read every frame of the log at ``path`` (a missing file is an empty log)."""
    scan = Scan()
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return scan
    pos = 0
    line_no = 0
    bad: list[tuple[int, int, str]] = []  # line, start offset, why
    while pos < len(data):
        line_no += 1
        end = data.find(b"\n", pos)
        if end < 0:
            bad.append((line_no, pos, "is cut short (no end of line)"))
            break
        frame, why = _decode(data[pos:end])
        if frame is None:
            bad.append((line_no, pos, why))
        else:
            if bad:  # a bad frame with a good one after it: corruption, not a torn write
                for n, _, reason in bad:
                    scan.problems.append(f"log line {n} {reason}")
                bad = []
            scan.frames.append((line_no, frame))
            scan.sizes.append(end + 1 - pos)
            scan.good_end = end + 1
        pos = end + 1
    if bad:
        scan.torn_tail = True  # only bad lines at the end: a write the crash cut short
    return scan


def _decode(line: bytes) -> tuple[dict[str, Any] | None, str]:
    body, tab, crc = line.rpartition(b"\t")
    if not tab:
        return None, "has no checksum"
    try:
        if int(crc, 16) != binascii.crc32(body):
            return None, "does not match its frame checksum"
        frame = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None, "is not a valid frame"
    if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
        return None, "is not a valid frame"
    return frame, ""


def _record_json(staged: Staged) -> dict[str, Any]:
    s, checksum, chain, vec = staged
    return {
        "seq": s.seq,
        "atom": s.atom.to_dict(),
        "ts_us": s.ts_us,
        "recorded_us": s.recorded_us,
        "text": s.text,
        "quarantine": s.quarantine,
        "vec": base64.b64encode(vec).decode("ascii") if vec is not None else None,
        "sum": checksum.hex(),
        "chain": chain.hex(),
    }


def _atom(d: dict[str, Any]) -> Atom:
    vector = d.get("vector")
    return Atom(
        id=d["id"],
        world=d["world"],
        worker=d["worker"],
        kind=d["kind"],
        timestamp=d["timestamp"],
        importance=float(d["importance"]),
        payload_json=d["payload_json"],
        vector=tuple(float(x) for x in vector) if vector is not None else None,
        flags=tuple(d.get("flags", ())),
        labels=tuple(d.get("labels", ())),
        links=tuple(Link(x["target"], x["kind"]) for x in d.get("links", ())),
        recorded_at=d.get("recorded_at", ""),
    )


def _staged(r: dict[str, Any]) -> Staged:
    s = StoredAtom(
        atom=_atom(r["atom"]),
        seq=int(r["seq"]),
        ts_us=int(r["ts_us"]),
        recorded_us=int(r["recorded_us"]),
        text=r["text"],
        quarantine=r.get("quarantine"),
    )
    vec = base64.b64decode(r["vec"]) if r.get("vec") is not None else None
    return s, bytes.fromhex(r["sum"]), bytes.fromhex(r["chain"]), vec


def _records(frames: Sequence[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int, str, Any]]:
    for line_no, frame in frames:
        yield line_no, frame["op"], frame


def _check_chain(
    report: CheckReport,
    heads: dict[str, bytes],
    world: str,
    seq: int,
    checksum: bytes,
    chain: bytes,
) -> None:
    if chain_next(heads.get(world, GENESIS), checksum) != chain:
        report.problem(f"hash chain of world {world!r} breaks at seq {seq}")
    heads[world] = chain


class LogStorage(MemoryStorage):
    """The append-only log adapter (see the module docs). ``durability="full"`` fsyncs every
    frame; ``"normal"`` hands each frame to the OS before returning (survives a crash of the
    process, not of the machine)."""

    def __init__(self, data_dir: str, *, durability: str = "normal") -> None:
        if durability not in ("normal", "full"):
            raise InvalidInputError(
                f"durability {durability!r} must be 'normal' or 'full'", field="durability"
            )
        super().__init__()
        self.data_dir = data_dir
        self.path = log_path(data_dir)
        self.durability = durability
        self.load_problems: list[str] = []
        # Bytes each live atom takes in the log: what a compaction keeps, and what gc's disk
        # budget counts (the file also holds deleted atoms until it is compacted).
        self._sizes: dict[int, int] = {}
        self._live = 0
        if not os.path.isdir(data_dir):  # WASI: a preopened directory's parent is not there
            os.makedirs(data_dir, exist_ok=True)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - held open until close()
        try:
            self._lock_file()
            self._load()
        except BaseException:
            self._fh.close()
            raise

    # ------------------------------------------------------------------ opening

    def _lock_file(self) -> None:
        if fcntl is None:  # pragma: no cover - WASI: one instance per data directory
            return
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"the log store in {self.data_dir} is open in another process; "
                "a log store has one process at a time"
            ) from None

    def _load(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path + ".compact")  # a compaction the crash cut short
        scan = read_frames(self.path)
        if scan.torn_tail:
            size = os.path.getsize(self.path)
            log.warning(
                "log %s: dropping a torn tail of %d bytes (a write cut short by a crash)",
                self.path,
                size - scan.good_end,
            )
            os.truncate(self.path, scan.good_end)
        self.load_problems = list(scan.problems)
        for (line_no, op, frame), size in zip(_records(scan.frames), scan.sizes, strict=True):
            try:
                self._apply(op, frame, size)
            except (KeyError, TypeError, ValueError) as exc:
                self.load_problems.append(f"log line {line_no} cannot be applied: {exc!r}")
        for problem in self.load_problems:
            log.error("log %s: %s", self.path, problem)

    def _apply(self, op: str, frame: dict[str, Any], size: int) -> None:
        if op == "append":
            staged = [_staged(r) for r in frame["records"]]
            self._commit(staged)
            self._count_live(staged, size)
        elif op == "quarantine":
            super().set_quarantine(int(frame["seq"]), frame.get("reason"))
        elif op == "delete":
            self._forget([int(q) for q in frame["seqs"]])
        elif op == "meta":
            self._meta[str(frame["key"])] = str(frame["value"])
        elif op == "gone":
            seq = int(frame["seq"])
            world, aid = str(frame["world"]), str(frame["id"])
            chain = bytes.fromhex(frame["chain"])
            self._ledger[seq] = (world, aid, bytes.fromhex(frame["sum"]), chain)
            self._heads[world] = chain
            self._deleted_ids.add(aid)
            self._seq = max(self._seq, seq)
        else:
            raise ValueError(f"unknown frame op {op!r}")

    # ------------------------------------------------------------------ writing

    def _write(self, data: bytes) -> None:
        start = self._fh.tell()
        try:
            self._fh.write(data)
            self._fh.flush()
            if self.durability == "full":
                os.fsync(self._fh.fileno())
        except OSError as exc:
            # Leave no half frame behind for the next write to follow.
            try:
                self._fh.truncate(start)
                self._fh.seek(start)
            except OSError:
                log.exception("log %s: could not cut back a failed write", self.path)
            raise StorageError(f"storage write failed, nothing was stored: {exc}") from exc

    def append(self, records: Sequence[NewRecord]) -> list[StoredAtom]:
        self._check_open()
        with self._lock:
            staged = self._stage(records)
            if not staged:
                return []
            try:
                data = encode_frame({"op": "append", "records": [_record_json(s) for s in staged]})
            except (ValueError, TypeError) as exc:
                raise StorageError(f"storage write failed, nothing was stored: {exc}") from exc
            self._write(data)
            out = self._commit(staged)
            self._count_live(staged, len(data))
            return out

    def _count_live(self, staged: Sequence[Staged], size: int) -> None:
        if not staged:
            return
        each = size // len(staged)
        for s, *_ in staged:
            self._sizes[s.seq] = each
            self._live += each

    def _forget(self, seqs: Sequence[int]) -> int:
        for q in seqs:
            self._live -= self._sizes.pop(q, 0)
        return super().delete(seqs)

    def set_quarantine(self, seq: int, reason: str | None) -> None:
        self._check_open()
        with self._lock:
            if seq not in self._by_seq:
                return
            self._write(encode_frame({"op": "quarantine", "seq": seq, "reason": reason}))
            super().set_quarantine(seq, reason)

    def delete(self, seqs: Sequence[int]) -> int:
        self._check_open()
        with self._lock:
            present = [q for q in dict.fromkeys(seqs) if q in self._by_seq]
            if present:
                self._write(encode_frame({"op": "delete", "seqs": present}))
            n = self._forget(present)
            # Deleted atoms stay in the file until a compaction: keep them under the live data
            # (and at least 1 MiB), so the file stays within about twice what it holds.
            if present and self._file_bytes() - self._live > max(self._live, 1 << 20):
                self.compact()
            return n

    def meta_set(self, key: str, value: str) -> None:
        self._check_open()
        with self._lock:
            self._write(encode_frame({"op": "meta", "key": key, "value": value}))
            super().meta_set(key, value)

    # ------------------------------------------------------------------ maintenance

    def used_bytes(self) -> int:
        """Bytes the stored atoms take in the log (deleted ones not counted)."""
        self._check_open()
        return self._live

    def _file_bytes(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def compact(self) -> dict[str, Any]:
        """Rewrite the log as the current state; a crash keeps the old log or the new one."""
        self._check_open()
        with self._lock:
            before = self._file_bytes()
            frames: list[dict[str, Any]] = []
            for seq in sorted(self._ledger):
                world, aid, checksum, chain = self._ledger[seq]
                s = self._by_seq.get(seq)
                if s is None:
                    frames.append(
                        {
                            "op": "gone",
                            "seq": seq,
                            "world": world,
                            "id": aid,
                            "sum": checksum.hex(),
                            "chain": chain.hex(),
                        }
                    )
                else:
                    staged = (s, checksum, chain, self._vectors.get(seq))
                    frames.append({"op": "append", "records": [_record_json(staged)]})
            for key, value in sorted(self._meta.items()):
                frames.append({"op": "meta", "key": key, "value": value})
            tmp = self.path + ".compact"
            try:
                with open(tmp, "wb") as out:
                    for f in frames:
                        out.write(encode_frame(f))
                    out.flush()
                    os.fsync(out.fileno())
                self._fh.close()
                os.replace(tmp, self.path)
            except OSError as exc:
                raise StorageError(f"compaction failed, the log is unchanged: {exc}") from exc
            finally:
                if self._fh.closed:
                    self._fh = open(self.path, "ab")  # noqa: SIM115
                    self._lock_file()
            return {"log_bytes_before": before, "log_bytes_after": self._file_bytes()}

    def check(self, *, quick: bool = False) -> CheckReport:
        """Verify the log on disk: frame checksums, record checksums, every world's chain."""
        del quick
        self._check_open()
        report = CheckReport()
        with self._lock:
            scan = read_frames(self.path)
        for problem in scan.problems:
            report.problem(problem)
        if scan.torn_tail:
            report.problem("the log ends with a frame cut short")
        heads: dict[str, bytes] = {}
        live: dict[int, str] = {}
        for line_no, op, frame in _records(scan.frames):
            try:
                if op == "append":
                    for r in frame["records"]:
                        s, checksum, chain, _ = _staged(r)
                        if record_checksum(s.atom) != checksum:
                            report.problem(
                                f"atom {s.atom.id} (seq {s.seq}) does not match its checksum"
                            )
                        _check_chain(report, heads, s.atom.world, s.seq, checksum, chain)
                        live[s.seq] = s.atom.world
                elif op == "gone":
                    _check_chain(
                        report,
                        heads,
                        str(frame["world"]),
                        int(frame["seq"]),
                        bytes.fromhex(frame["sum"]),
                        bytes.fromhex(frame["chain"]),
                    )
                elif op == "delete":
                    for q in frame["seqs"]:
                        live.pop(int(q), None)
            except (KeyError, TypeError, ValueError) as exc:
                report.problem(f"log line {line_no} cannot be read: {exc!r}")
        report.records = len(live)
        report.worlds = len(heads)
        with self._lock:
            if len(live) != len(self._by_seq):
                report.problem(
                    f"the log holds {len(live)} atoms, the open store {len(self._by_seq)}"
                )
        return report

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fh.close()

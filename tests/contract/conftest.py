"""Fixtures for the storage contract: every adapter of the Storage port, and a record builder.

``adapter`` is parametrised over every storage adapter, so a test that takes ``store`` (or
``adapter``) runs once per adapter. Adapter-specific hooks (``tamper``) let the same test
corrupt a record behind the store's back in whatever way that adapter keeps it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from dwbase.model import Atom, Link
from dwbase.security.keys import EnvKeyProvider
from dwbase.storage import MemoryStorage, NewRecord, SQLiteStorage, Storage
from dwbase.storage.log import LogStorage, encode_frame, read_frames
from dwbase.timeutil import format_instant, parse_instant
from dwbase.vector.exact import pack_unit

BASE_US = parse_instant("2024-01-01T00:00:00Z")
HOUR_US = 3_600_000_000


class RecordMaker:
    """Builds valid :class:`NewRecord` s with unique ids and consistent time fields."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(
        self,
        world: str = "w",
        text: str = "hello world",
        *,
        atom_id: str | None = None,
        kind: str = "observation",
        worker: str = "agent-1",
        ts_us: int | None = None,
        rec_us: int | None = None,
        importance: float = 0.5,
        labels: Sequence[str] = (),
        flags: Sequence[str] = (),
        links: Sequence[Link] = (),
        vector: Sequence[float] | None = None,
        quarantine: str | None = None,
    ) -> NewRecord:
        self.n += 1
        ts = BASE_US + self.n * HOUR_US if ts_us is None else ts_us
        rec = BASE_US + self.n * 1_000_000 if rec_us is None else rec_us
        atom = Atom(
            id=atom_id or f"atom-{self.n:05d}",
            world=world,
            worker=worker,
            kind=kind,
            timestamp=format_instant(ts),
            importance=importance,
            payload_json=json.dumps({"text": text}),
            vector=tuple(vector) if vector is not None else None,
            flags=tuple(flags),
            labels=tuple(labels),
            links=tuple(links),
            recorded_at=format_instant(rec),
        )
        return NewRecord(
            atom=atom,
            ts_us=ts,
            recorded_us=rec,
            text=text,
            # as the engine indexes a caller's vector: scaled to unit length
            index_vector=pack_unit(vector) if vector is not None else None,
            quarantine=quarantine,
        )


def _tamper_sqlite(store: Storage, path: str, seq: int) -> None:
    # Behind the store's back, as a disk fault or a hand edit would.
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(
                "UPDATE atoms SET payload_json=? WHERE seq=?", ('{"text":"tampered"}', seq)
            )
    finally:
        conn.close()


def _tamper_sqlite_encrypted(store: Storage, path: str, seq: int) -> None:
    # A valid ciphertext of another payload, as someone holding the key could write.
    from dwbase.storage.crypto import aad

    cipher = getattr(store, "_cipher")  # noqa: B009 (a private part, on purpose)
    conn = sqlite3.connect(path)
    try:
        with conn:
            (aid,) = conn.execute("SELECT id FROM atoms WHERE seq=?", (seq,)).fetchone()
            blob = cipher.seal(b'{"text":"tampered"}', aad(aid, "payload_json"), "k1")
            conn.execute("UPDATE atoms SET payload_json=? WHERE seq=?", (blob, seq))
    finally:
        conn.close()


def _tamper_memory(store: Storage, seq: int) -> None:
    assert isinstance(store, MemoryStorage)
    s = store._by_seq[seq]
    store._by_seq[seq] = replace(s, atom=replace(s.atom, payload_json='{"text":"tampered"}'))


def _tamper_log(path: str, seq: int) -> None:
    # Rewrite the record's payload and re-seal its frame, so only the record checksum can tell.
    scan = read_frames(path)
    frames = [frame for _, frame in scan.frames]
    for frame in frames:
        for r in frame.get("records", ()):
            if r["seq"] == seq:
                r["atom"]["payload_json"] = '{"text":"tampered"}'
    Path(path).write_bytes(b"".join(encode_frame(f) for f in frames))


@dataclass
class Adapter:
    name: str
    open: Callable[[], Storage]
    tamper: Callable[[Storage, int], None]
    path: str | None = None  # the SQLite file or the log, for adapters that persist

    @property
    def persistent(self) -> bool:
        return self.path is not None


def _sqlite(tmp_path: Path) -> Adapter:
    path = str(tmp_path / "store.sqlite3")
    return Adapter(
        "sqlite",
        lambda: SQLiteStorage(path),
        lambda store, seq: _tamper_sqlite(store, path, seq),
        path,
    )


def _log(tmp_path: Path) -> Adapter:
    data_dir = str(tmp_path / "logstore")
    return Adapter(
        "log",
        lambda: LogStorage(data_dir),
        lambda store, seq: _tamper_log(str(Path(data_dir) / "atoms.log"), seq),
        str(Path(data_dir) / "atoms.log"),
    )


def _sqlite_encrypted(tmp_path: Path) -> Adapter:
    path = str(tmp_path / "store.sqlite3")
    provider = EnvKeyProvider({"DWBASE_KEY_K1": "11" * 32})
    return Adapter(
        "sqlite-encrypted",
        lambda: SQLiteStorage(path, encryption_key="k1", key_provider=provider),
        lambda store, seq: _tamper_sqlite_encrypted(store, path, seq),
        path,
    )


ADAPTERS: dict[str, Callable[[Path], Adapter]] = {
    "log": _log,
    "sqlite": _sqlite,
    "sqlite-encrypted": _sqlite_encrypted,
    "memory": lambda _: Adapter("memory", MemoryStorage, _tamper_memory),
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Adapter:
    """Every storage adapter in turn."""
    return ADAPTERS[request.param](tmp_path)


@pytest.fixture
def sqlite_adapter(tmp_path: Path) -> Adapter:
    """The SQLite adapter alone, for tests of persistence and of the file itself."""
    return _sqlite(tmp_path)


@pytest.fixture(params=["log", "sqlite"])
def persistent_adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Adapter:
    """Every adapter that keeps its atoms on disk."""
    return ADAPTERS[request.param](tmp_path)


@pytest.fixture
def store(adapter: Adapter) -> Iterator[Storage]:
    s = adapter.open()
    yield s
    s.close()


@pytest.fixture
def rec() -> RecordMaker:
    return RecordMaker()

"""The storage port. Every adapter passes ``tests/contract/test_storage_contract.py``.

Storage keeps atoms in append order (``seq``), a per-world hash chain over record checksums,
and the lookup structures the engine needs: by id, by world+seq, by world+event time, by
label/flag, by link target, lexical text search and the index vectors.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_str  # json.dumps' own
from typing import Protocol

from ..model import Atom, FilterSpec, StoredAtom

PROTECTED_LABEL_PREFIXES = ("policy:", "world_meta", "world_status:")


@dataclass(frozen=True, slots=True)
class NewRecord:
    """What the engine hands to :meth:`Storage.append`; storage assigns ``seq``."""

    atom: Atom
    ts_us: int
    recorded_us: int
    text: str
    index_vector: bytes | None  # float32 little-endian, the vector the index searches
    quarantine: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """The few columns ``ask`` scores with; full atoms are decoded only for the final hits."""

    seq: int
    id: str
    worker: str
    ts_us: int
    importance: float
    system: bool  # carries a policy / world lifecycle label


@dataclass(slots=True)
class CheckReport:
    ok: bool = True
    records: int = 0
    worlds: int = 0
    problems: list[str] = field(default_factory=list)
    # Records of an encrypted store whose subject key was erased (crypto-shredded): counted
    # in ``records``, unreadable on purpose, not a problem.
    erased: int = 0

    def problem(self, text: str) -> None:
        self.ok = False
        if len(self.problems) < 1000:
            self.problems.append(text)


def vector_bytes(vector: Sequence[float]) -> bytes:
    """A caller's vector as float64 little-endian bytes: exact, and cheap to write."""
    arr = array("d", vector)
    if sys.byteorder != "little":  # pragma: no cover - every supported platform is little
        arr.byteswap()
    return arr.tobytes()


def vector_from_bytes(data: bytes) -> tuple[float, ...]:
    arr = array("d")
    arr.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover
        arr.byteswap()
    return tuple(arr)


def record_checksum(atom: Atom) -> bytes:
    """SHA-256 over a canonical form of the atom's stored fields.

    The canonical form is the sorted-key JSON of every field but the vector (``json.dumps`` of
    :meth:`Atom.to_dict` with ``sort_keys``, ``ensure_ascii=False``, no spaces), then the
    vector's float64 bytes (exact, and far cheaper than formatting hundreds of floats as text).
    The JSON is assembled here from the same string escaper ``json.dumps`` uses, in the same
    key order, without building the dict (a cost on every append); any field of another type
    than the model's takes :func:`canonical_json` itself.
    """
    body = _canonical_fast(atom)
    if body is None:
        body = canonical_json(atom)
    h = hashlib.sha256(body.encode("utf-8"))
    if atom.vector is not None:
        h.update(b"\x00")
        h.update(vector_bytes(atom.vector))
    return h.digest()


def canonical_json(atom: Atom) -> str:
    """The JSON :func:`record_checksum` hashes (the vector left out), by ``json.dumps``."""
    fields = atom.to_dict()
    fields["vector"] = None
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _canonical_fast(atom: Atom) -> str | None:
    imp = atom.importance
    if type(imp) is float and math.isfinite(imp):
        importance = float.__repr__(imp)
    elif type(imp) is int:
        importance = int.__repr__(imp)
    else:
        return None  # NaN, a bool or another number type: json.dumps decides
    enc = _encode_str
    try:
        links = ",".join(
            '{"kind":' + enc(x.kind) + ',"target":' + enc(x.target) + "}" for x in atom.links
        )
        return "".join(
            (
                '{"flags":[',
                ",".join(map(enc, atom.flags)),
                '],"id":',
                enc(atom.id),
                ',"importance":',
                importance,
                ',"kind":',
                enc(atom.kind),
                ',"labels":[',
                ",".join(map(enc, atom.labels)),
                '],"links":[',
                links,
                '],"payload_json":',
                enc(atom.payload_json),
                ',"recorded_at":',
                enc(atom.recorded_at),
                ',"timestamp":',
                enc(atom.timestamp),
                ',"vector":null,"worker":',
                enc(atom.worker),
                ',"world":',
                enc(atom.world),
                "}",
            )
        )
    except (TypeError, AttributeError):
        return None  # a field that is not a string: json.dumps decides


def chain_next(prev: bytes, checksum: bytes) -> bytes:
    return hashlib.sha256(prev + checksum).digest()


GENESIS = b"\x00" * 32


def is_protected(labels: Sequence[str]) -> bool:
    return any(label.startswith(PROTECTED_LABEL_PREFIXES) for label in labels)


class Storage(Protocol):
    """The storage port. ``quarantined=True`` selects atoms held in ``quarantine:<world>``."""

    def append(self, records: Sequence[NewRecord]) -> list[StoredAtom]:
        """Store records in one transaction; ids already present are skipped (idempotent).

        Returns the records actually stored, with their ``seq``. All or nothing.
        """
        ...

    def get(self, atom_id: str) -> StoredAtom | None: ...

    def get_many(self, atom_ids: Sequence[str]) -> dict[str, StoredAtom]: ...

    def get_seqs(self, seqs: Sequence[int]) -> dict[int, StoredAtom]: ...

    def scan(
        self,
        world: str,
        spec: FilterSpec,
        *,
        quarantined: bool = False,
        after_seq: int | None = None,
        order: str = "append",
        descending: bool = False,
        limit: int | None = None,
    ) -> list[StoredAtom]:
        """Atoms of ``world`` matching ``spec``, in append (seq) or event-time order."""
        ...

    def search_text(
        self,
        world: str,
        terms: Sequence[str],
        limit: int,
        *,
        spec: FilterSpec | None = None,
        quarantined: bool = False,
    ) -> list[tuple[int, float]]:
        """``(seq, relevance)`` for atoms matching ``spec`` that contain any term, best first."""
        ...

    def recent_seqs(
        self, world: str, spec: FilterSpec, limit: int, *, quarantined: bool = False
    ) -> list[int]:
        """Seqs of the newest ``limit`` atoms of ``world`` matching ``spec`` (newest first)."""
        ...

    def score_rows(self, seqs: Sequence[int]) -> dict[int, ScoreRow]:
        """Light rows for scoring; absent seqs are left out."""
        ...

    def filter_seqs(
        self, world: str, seqs: Sequence[int], spec: FilterSpec, *, quarantined: bool = False
    ) -> set[int]:
        """The subset of ``seqs`` that are atoms of ``world`` matching ``spec``."""
        ...

    def load_vectors(
        self,
        world: str,
        *,
        quarantined: bool = False,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[tuple[int, bytes]]:
        """Index vectors of ``world`` (``seq``, float32 bytes) in seq order after ``after_seq``;
        at most ``limit`` of them (the first ones) when it is given."""
        ...

    def link_counts(
        self, targets: Sequence[str], *, as_of_us: int | None = None
    ) -> dict[str, dict[str, int]]:
        """For each target id, how many stored (non-quarantined) atoms link to it, per kind."""
        ...

    def with_label_prefix(self, prefix: str, *, world: str | None = None) -> list[StoredAtom]:
        """Non-quarantined atoms carrying a label that starts with ``prefix``, in seq order."""
        ...

    def worlds(self) -> list[str]:
        """Every world that holds at least one atom (quarantined atoms count for their world)."""
        ...

    def known_ids(self, world: str) -> list[str]:
        """Sorted ids of every atom ``world`` ever stored here: live, quarantined, erased
        (crypto-shredded) and deleted (tombstones). Reads ids only, decodes no atom."""
        ...

    def count(self, world: str | None = None, *, quarantined: bool | None = None) -> int: ...

    def quarantined(self, world: str | None = None, limit: int = 1000) -> list[StoredAtom]: ...

    def set_quarantine(self, seq: int, reason: str | None) -> None: ...

    def gc_candidates(
        self, world: str, *, older_than_us: int | None, below_importance: float | None, limit: int
    ) -> list[int]:
        """Seqs that retention may remove: never protected atoms or link targets."""
        ...

    def lowest_value(self, limit: int) -> list[int]:
        """Seqs to evict first under a disk budget (lowest importance, then oldest)."""
        ...

    def delete(self, seqs: Sequence[int]) -> int:
        """Remove atoms from every index; their ledger entries stay so the chain verifies."""
        ...

    def max_seq(self) -> int: ...

    def meta_get(self, key: str) -> str | None: ...

    def look(self) -> tuple[int, int, int]:
        """``(changes, max_seq, foreign_generation)``: a number that moves when another
        process commits (0 where none can), the highest seq, and the count of deletes,
        quarantine changes and reindexes other processes made (see the SQLite adapter)."""
        ...

    def scan_seqs(self, after_seq: int, upto_seq: int) -> list[StoredAtom]:
        """Every stored atom, any world, held ones too, with ``after_seq < seq <= upto_seq``."""
        ...

    def meta_set(self, key: str, value: str) -> None: ...

    def used_bytes(self) -> int: ...

    def check(self, *, quick: bool = False) -> CheckReport:
        """Verify records, hash chains and indexes; ``quick`` skips the slowest file checks."""
        ...

    def reindex(self) -> int:
        """Rebuild text, tag and link indexes from the atom records; returns atoms indexed."""
        ...

    def close(self) -> None: ...

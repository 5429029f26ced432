"""Exact cosine search over one world's vectors.

Uses numpy when it is importable (the normal install) and falls back to pure Python (inside
the WASI component), so the engine never needs an extra to run.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import operator
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

_np: Any
try:  # numpy is a normal dependency, but the WASI build has none.
    import numpy as _np
except ImportError:  # pragma: no cover - exercised inside the component
    _np = None

_blas: Any = None
try:
    from threadpoolctl import ThreadpoolController

    _blas = ThreadpoolController()
except ImportError:  # pragma: no cover - threadpoolctl is a normal dependency
    _blas = None


_pinned: Any = None  # the process-wide one-thread BLAS limit, once pin_blas_threads ran


def pin_blas_threads() -> None:
    """Keep BLAS on one thread for the rest of this process.

    For a process that only answers queries (an ask worker): it saves :func:`_dot` setting
    and restoring the limit around every product. A library user's process is left alone.
    """
    global _pinned
    if _blas is not None and _pinned is None:
        _pinned = _blas.limit(limits=1, user_api="blas")


NO_TS = -(2**63)  # an event time not known (yet), in Probe.context
SPARSE_QUERY = 0.25  # a query with at most this share of non-zero dimensions reads only those


def _dot(vecs: Any, by_rows: bool, n: int, q: Any) -> Any:
    """``q`` times each of the first ``n`` vectors (a float32 array of ``n``).

    ``vecs`` holds them as columns (``dim x capacity``) or, with ``by_rows``, as rows.

    One query is a matrix-vector product bound by memory bandwidth. A sparse query (the
    hashing embedder's for a short question: most dimensions zero) multiplies only the rows
    of its non-zero dimensions, reading a fraction of the matrix; the figures equal the full
    product's to float32 rounding. BLAS threads only add hand-offs here, and on a busy
    machine they wait for a core (10x slower at 10k vectors), so one thread does it.
    """
    if by_rows:
        sub, qq = vecs[:n].T, q
    else:
        nz = _np.flatnonzero(q)
        if len(nz) <= SPARSE_QUERY * len(q):
            sub, qq = vecs[nz, :n], q[nz]
        else:
            sub, qq = vecs[:, :n], q
    if _blas is None or _pinned is not None:
        return qq @ sub
    with _blas.limit(limits=1, user_api="blas"):
        return qq @ sub


def pack(vec: Sequence[float]) -> bytes:
    return array("f", vec).tobytes()


def pack_unit(vec: Sequence[float]) -> bytes:
    """``vec`` scaled to unit length (a zero vector stays zero), as float32 bytes."""
    norm = math.hypot(*vec) or 1.0  # hypot scales, so huge or tiny values do not overflow
    if _np is not None:
        arr = _np.asarray(vec, dtype=_np.float64) / norm
        return bytes(arr.astype(_np.float32).tobytes())
    return pack([v / norm for v in vec])


def unpack(data: bytes) -> list[float]:
    a = array("f")
    a.frombytes(data)
    return a.tolist()


class ExactIndex:
    """Rows of float32 vectors keyed by seq; ``search`` returns best-first ``(seq, cosine)``."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.max_seq = 0
        self._lock = threading.Lock()
        self._seqs: list[int] = []  # row -> seq (-1: removed); pure Python only, else _seq_arr
        self._rows: dict[int, int] = {}
        self._py: list[list[float]] = []
        # numpy: the vectors as columns (dim x capacity), so a sparse query reads only the
        # dimensions it uses; as rows (capacity x dim) once an ANN graph answers the
        # searches and only scattered vectors are read (see by_rows); pure Python: _py
        self._vecs: Any = None
        self._by_rows = False
        self._n = 0
        self._sorted: list[int] = []  # live seqs in order, for neighbour lookups
        # numpy only, for Probe.context: each row's event time (NO_TS until first asked for), and
        # the live seqs in order with their rows (rebuilt after anything but an append)
        self._ts: Any = None
        self._seq_arr: Any = None  # numpy: row -> seq (-1: removed), capacity as _vecs
        self._ord: Any = None
        self._ord_rows: Any = None
        self._ord_n = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, items: Sequence[tuple[int, bytes]]) -> None:
        with self._lock:
            fresh = [(s, d) for s, d in items if s not in self._rows]
            if not fresh:
                return
            block = None
            if _np is not None:
                block = _np.frombuffer(b"".join(d for _, d in fresh), dtype=_np.float32)
                block = block.reshape(len(fresh), self.dim)
            else:
                self._py.extend(unpack(d) for _, d in fresh)
            self._append([s for s, _ in fresh], block)

    def add_matrix(self, seqs: Sequence[int], matrix: Any) -> None:
        """Add ``matrix`` (numpy float32, ``len(seqs) x dim``) under ``seqs`` (numpy only)."""
        with self._lock:
            keep = [i for i, s in enumerate(seqs) if s not in self._rows]
            if not keep:
                return
            if len(keep) < len(seqs):
                matrix = matrix[keep]
            self._append([seqs[i] for i in keep], matrix)

    def _append(self, seqs: Sequence[int], block: Any) -> None:
        """(lock held) New rows: ``block`` (numpy) or, pure Python, already in ``_py``."""
        if block is not None:
            need = self._n + len(seqs)
            have = 0 if self._vecs is None else len(self._ts)
            if need > have:
                # a first load fits exactly (1,000 small worlds hold no spare rows); then
                # a quarter more each time, so spare rows stay under a fifth of the matrix
                cap = need if have == 0 else max(need, have + have // 4 + 16)
                ts = _np.full(cap, NO_TS, dtype=_np.int64)
                seq_arr = _np.full(cap, -1, dtype=_np.int64)
                if self._by_rows:
                    grown = _np.zeros((cap, self.dim), dtype=_np.float32)
                    if self._vecs is not None:
                        grown[: self._n] = self._vecs[: self._n]
                else:
                    grown = _np.zeros((self.dim, cap), dtype=_np.float32)
                    if self._vecs is not None:
                        grown[:, : self._n] = self._vecs[:, : self._n]
                if self._ts is not None:
                    ts[: self._n] = self._ts[: self._n]
                    seq_arr[: self._n] = self._seq_arr[: self._n]
                self._vecs, self._ts, self._seq_arr = grown, ts, seq_arr
            if self._by_rows:
                self._vecs[self._n : need] = block
            else:
                self._vecs[:, self._n : need] = block.T
            self._seq_arr[self._n : need] = seqs
        if self._n == 0 and all(a < b for a, b in itertools.pairwise(seqs)):
            # a first load in seq order (a saved graph's vectors): the bookkeeping in bulk
            self._rows = dict(zip(seqs, range(len(seqs)), strict=True))
            self._sorted = list(seqs)
            if block is None:
                self._seqs = list(seqs)
            self.max_seq, self._n = (seqs[-1] if seqs else 0), len(seqs)
            return
        appended = []
        for s in seqs:
            self._rows[s] = self._n
            if block is None:
                self._seqs.append(s)
            self.max_seq = max(self.max_seq, s)
            if not self._sorted or s > self._sorted[-1]:
                self._sorted.append(s)
                appended.append((s, self._n))
            else:
                bisect.insort(self._sorted, s)
                self._ord = None
            self._n += 1
        if self._ord is not None:
            self._ord_extend(appended)

    def remove(self, seqs: Sequence[int]) -> None:
        with self._lock:
            for s in seqs:
                row = self._rows.pop(s, None)
                if row is None:
                    continue
                if _np is not None:
                    self._seq_arr[row] = -1
                else:
                    self._seqs[row] = -1
                self._ord = None
                pos = bisect.bisect_left(self._sorted, s)
                if pos < len(self._sorted) and self._sorted[pos] == s:
                    del self._sorted[pos]
                if _np is not None:
                    self._row_view(row)[:] = 0.0
                else:
                    self._py[row] = [0.0] * self.dim

    def __contains__(self, seq: object) -> bool:
        return seq in self._rows

    def seqs(self) -> list[int]:
        """Live seqs in ascending order."""
        with self._lock:
            return list(self._sorted)

    def vectors(self, seqs: Sequence[int]) -> dict[int, list[float]]:
        """The stored (unit) vectors of those ``seqs`` that are in the index."""
        out: dict[int, list[float]] = {}
        with self._lock:
            for s in seqs:
                row = self._rows.get(s)
                if row is None:
                    continue
                if _np is not None:
                    out[s] = self._row_view(row).tolist()
                else:
                    out[s] = list(self._py[row])
        return out

    def scores(self, query: Sequence[float], seqs: Sequence[int]) -> dict[int, float]:
        """Cosine of ``query`` with each indexed seq among ``seqs`` (exact, any index kind)."""
        return self.probe(query).scores(seqs)

    def probe(self, query: Sequence[float]) -> Probe:
        """One query against this index, for several lookups (see :class:`Probe`)."""
        return Probe(self, query)

    def neighbours(self, seq: int) -> tuple[int | None, int | None]:
        """The live seqs just before and just after ``seq`` in this world (its context)."""
        return self.neighbours_many([seq])[seq]

    def neighbours_many(self, seqs: Iterable[int]) -> dict[int, tuple[int | None, int | None]]:
        """:meth:`neighbours` of each of ``seqs``, under one lock."""
        out: dict[int, tuple[int | None, int | None]] = {}
        find = bisect.bisect_left
        with self._lock:
            order = self._sorted
            n = len(order)
            for seq in seqs:
                pos = find(order, seq)
                before = order[pos - 1] if pos > 0 else None
                if pos < n and order[pos] == seq:
                    pos += 1
                out[seq] = (before, order[pos] if pos < n else None)
        return out

    def by_rows(self) -> None:
        """Keep the vectors as rows from now on (numpy; a copy, once).

        For a world whose searches an ANN graph answers: an ask then reads a few hundred
        scattered vectors, which rows give in one piece each and columns only element by
        element, many times slower at 100k vectors.
        """
        with self._lock:
            if _np is None or self._by_rows:
                return
            self._by_rows = True
            if self._vecs is not None:
                self._vecs = _np.ascontiguousarray(self._vecs.T)

    def _row_view(self, row: int) -> Any:
        return self._vecs[row] if self._by_rows else self._vecs[:, row]

    def _gather(self, rows: Any) -> Any:
        """(lock held) The vectors of ``rows`` as a contiguous ``len(rows) x dim`` array."""
        if self._by_rows:
            return self._vecs[rows]
        return _np.ascontiguousarray(self._vecs[:, rows].T)

    def _cosines(self, q: Any, rows: Any) -> Any:
        """(lock held) ``q`` times the vectors of ``rows`` (a few hundred: setting the BLAS
        thread limit would cost more than the threads do)."""
        if self._by_rows:
            return self._vecs[rows] @ q
        return q @ self._vecs[:, rows]

    def _ord_extend(self, appended: Sequence[tuple[int, int]]) -> None:
        # (lock held) live seqs appended in order: extend the order arrays in place
        n = self._ord_n
        need = n + len(appended)
        if need + 2 > len(self._ord):
            cap = max(need + 2, 2 * len(self._ord))
            seqs, rows = _np.empty(cap, dtype=_np.int64), _np.zeros(cap, dtype=_np.int64)
            seqs[: n + 1], rows[: n + 1] = self._ord[: n + 1], self._ord_rows[: n + 1]
            self._ord, self._ord_rows = seqs, rows
        self._ord[n + 1 : need + 1] = [s for s, _ in appended]
        self._ord_rows[n + 1 : need + 1] = [r for _, r in appended]
        self._ord[need + 1] = -1
        self._ord_n = need

    def _order(self) -> tuple[Any, Any, int]:
        """(lock held) The live seqs in order and their rows, between two -1 sentinels.

        ``(seqs, rows, n)``: ``seqs[1 : n + 1]`` are the live seqs; ``seqs[0]`` and
        ``seqs[n + 1]`` are -1, so a neighbour past either end reads as none.
        """
        if self._ord is None:
            n = len(self._sorted)
            self._ord = _np.array([-1, *self._sorted, -1], dtype=_np.int64).reshape(n + 2)
            rows = [0, *(self._rows[s] for s in self._sorted), 0]
            self._ord_rows = _np.array(rows, dtype=_np.int64).reshape(n + 2)
            self._ord_n = n
        return self._ord, self._ord_rows, self._ord_n

    def matrix(self) -> tuple[list[int], Any]:
        """(seqs, float32 matrix) of live rows, for building an ANN graph (numpy only)."""
        seqs, mat, _ = self.snapshot()
        return seqs, mat

    def snapshot(self) -> tuple[list[int], Any, int]:
        """:meth:`matrix` and the number of rows it looked at: rows added later come after."""
        with self._lock:
            n = self._n
            if n == 0:
                return [], _np.zeros((0, self.dim), dtype=_np.float32), 0
            live = _np.flatnonzero(self._seq_arr[:n] >= 0)
            return self._seq_arr[live].tolist(), self._gather(live), n

    @property
    def rows(self) -> int:
        """Rows so far (live or removed); a row's number never changes."""
        return self._n

    def live_from(self, lo: int) -> int:
        """How many live rows there are from row ``lo`` on."""
        with self._lock:
            if lo >= self._n:
                return 0
            if _np is None:
                return sum(1 for s in self._seqs[lo : self._n] if s >= 0)
            return int(_np.count_nonzero(self._seq_arr[lo : self._n] >= 0))

    def seqs_from(self, lo: int) -> list[int]:
        """The live seqs of the rows from ``lo`` on, in row order."""
        with self._lock:
            if lo >= self._n:
                return []
            if _np is None:
                return [s for s in self._seqs[lo : self._n] if s >= 0]
            seqs = self._seq_arr[lo : self._n]
            live: list[int] = seqs[seqs >= 0].tolist()
            return live

    def rows_block(self, lo: int, size: int) -> tuple[list[int], Any, int]:
        """(seqs, float32 vectors) of the live rows in ``[lo, lo + size)``, and where that
        range ends (numpy, vectors kept as rows: an ANN world's unindexed tail)."""
        with self._lock:
            hi = min(self._n, lo + size)
            if hi <= lo:
                return [], _np.zeros((0, self.dim), dtype=_np.float32), lo
            seqs = self._seq_arr[lo:hi]
            live = seqs >= 0
            block = self._vecs[lo:hi] if self._by_rows else self._vecs[:, lo:hi].T
            if live.all():
                return seqs.tolist(), _np.array(block, dtype=_np.float32), hi
            return seqs[live].tolist(), _np.array(block[live], dtype=_np.float32), hi

    def search(self, query: Sequence[float], k: int) -> list[tuple[int, float]]:
        return self.probe(query).search(k)


@dataclass(frozen=True, slots=True)
class Context:
    """Neighbours of ``k`` seqs (see :meth:`Probe.context`): numpy arrays of ``2k``."""

    seqs: Any  # -1: no neighbour
    cos: Any  # float64
    ts: Any  # NO_TS: not a stored atom


class Probe:
    """One query against an :class:`ExactIndex`: its nearest atoms and any atom's cosine.

    ``search`` scores every row; later ``scores`` calls read those figures instead of
    multiplying again (rows added since are scored on demand). An ``ask`` makes one probe and
    asks it for the top candidates, then for the cosines of every other atom it weighs.
    """

    def __init__(self, index: ExactIndex, query: Sequence[float]) -> None:
        self._index = index
        self._q: Any = (
            _np.asarray(query, dtype=_np.float32) if _np is not None else [float(v) for v in query]
        )
        self._all: Any = None  # cosines of rows [0, _upto) once search scored them all
        self._upto = 0
        # pure Python multiplies only the query's non-zero dimensions (zero terms add nothing)
        nz = [(j, v) for j, v in enumerate(self._q) if v] if _np is None else []
        self._nz_dims = [j for j, _ in nz]
        self._nz_vals = [v for _, v in nz]
        self._py_all: dict[int, float] = {}  # row -> cosine, once search scored them all

    def _py_dot(self, row: list[float]) -> float:
        # map() over the row's items runs about twice as fast as a generator in sum() (the
        # WASI component, which has no numpy, spends most of an ask here)
        return float(sum(map(operator.mul, map(row.__getitem__, self._nz_dims), self._nz_vals)))

    def search(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest indexed seqs, best first: ``(seq, cosine)``."""
        index = self._index
        if k <= 0:
            return []
        with index._lock:
            n = index._n
            if n == 0:
                return []
            if _np is not None:
                scores = _dot(index._vecs, index._by_rows, n, self._q)
                self._all, self._upto = scores, n
                kk = min(k, n)
                idx = _np.argpartition(-scores, kk - 1)[:kk] if kk < n else _np.arange(n)
                idx = idx[_np.argsort(-scores[idx], kind="stable")]
                found = index._seq_arr[idx].tolist()
                vals = scores[idx].tolist()
                return [(s, v) for s, v in zip(found, vals, strict=True) if s >= 0]
            seqs = index._seqs
            dot = self._py_dot
            scored = {i: dot(row) for i, row in enumerate(index._py) if seqs[i] >= 0}
            self._py_all = scored
            best = heapq.nlargest(k, scored.items(), key=operator.itemgetter(1))
            return [(seqs[i], s) for i, s in best]

    def context(self, seqs: Sequence[int], ts_of: Callable[[list[int]], dict[int, int]]) -> Context:
        """The atoms just before and after each of ``seqs`` in this world (numpy only).

        For ``ask``'s context part: the neighbours' seqs (-1: none), cosines with the query
        and event times (``NO_TS``: not a stored atom), each array the ``k`` previous
        neighbours then the ``k`` next ones. Event times are kept per row once ``ts_of``
        (seqs -> event time, from the store) has told them.
        """
        np = _np
        index = self._index
        k = len(seqs)
        want = np.fromiter(seqs, dtype=np.int64, count=k)
        with index._lock:
            order, order_rows, m = index._order()
            pos = order[1 : m + 1].searchsorted(want)  # order[pos] is the one before
            at = np.concatenate((pos, pos + 1 + (order[pos + 1] == want)))
            nbr, rows = order[at], order_rows[at]
            ts = index._ts[rows] if index._ts is not None else np.full(2 * k, NO_TS)
            if self._all is not None and int(rows.max(initial=0)) < self._upto:
                cos = self._all[rows]
            elif index._vecs is not None:
                cos = index._cosines(self._q, rows)
            else:
                cos = np.zeros(2 * k, dtype=np.float32)
        real = nbr >= 0  # the sentinels' row 0 is some other atom: none of its figures count
        unknown = (ts == NO_TS) & real
        if unknown.any():
            ask_rows, ask_seqs = rows[unknown], nbr[unknown].tolist()
            got = ts_of(list(dict.fromkeys(ask_seqs)))
            found = np.array([got.get(q, NO_TS) for q in ask_seqs], dtype=np.int64)
            ts[unknown] = found  # ts is a copy (fancy indexing)
            with index._lock:
                if index._ts is not None:
                    index._ts[ask_rows] = found
        return Context(nbr, np.where(real, cos, 0.0).astype(np.float64), np.where(real, ts, NO_TS))

    def top(self, seqs: Sequence[int], k: int) -> list[tuple[int, float]]:
        """The ``k`` indexed seqs among ``seqs`` nearest the query, best first: ``(seq,
        cosine)``; equal cosines keep the order of ``seqs`` (which may repeat a seq)."""
        index = self._index
        if _np is None:
            got = self.scores(seqs)
            return sorted(got.items(), key=lambda x: -x[1])[:k]
        with index._lock:
            get = index._rows.get
            pairs = [(s, r) for s in dict.fromkeys(seqs) if (r := get(s)) is not None]
            if not pairs or k <= 0:
                return []
            rows = _np.fromiter((r for _, r in pairs), dtype=_np.int64, count=len(pairs))
            if self._all is not None and int(rows.max()) < self._upto:
                vals = self._all[rows]
            else:
                vals = index._cosines(self._q, rows)
        order = _np.argsort(-vals, kind="stable")[:k]
        return [(pairs[i][0], v) for i, v in zip(order.tolist(), vals[order].tolist(), strict=True)]

    def top_after(self, near: Sequence[int], lo: int, k: int) -> list[tuple[int, float]]:
        """:meth:`top` of ``near`` (an ANN graph's neighbours) and of every live row from
        ``lo`` on (the vectors the graph has not taken in yet), best first; equal cosines
        keep ``near``'s order, then the rows'.

        The rows from ``lo`` on are one contiguous block, scored in one product however
        long the tail grows while a bulk writer outruns the graph.
        """
        index = self._index
        if _np is None:
            with index._lock:
                tail = [s for s in index._seqs[lo : index._n] if s >= 0]
            return self.top([*near, *tail], k)
        np = _np
        if k <= 0:
            return []
        with index._lock:
            n = index._n
            get = index._rows.get
            # a seq the graph took in after its tail was read is scored with the tail
            pairs = [(s, r) for s in dict.fromkeys(near) if (r := get(s)) is not None and r < lo]
            rows = np.fromiter((r for _, r in pairs), dtype=np.int64, count=len(pairs))
            if not pairs:
                near_vals = np.zeros(0, dtype=np.float32)
            elif self._all is not None and int(rows.max()) < self._upto:
                near_vals = self._all[rows]
            else:
                near_vals = index._cosines(self._q, rows)
            if n > lo:
                if self._all is not None and n <= self._upto:
                    tail_vals = self._all[lo:n]
                else:
                    tail_vals = _dot(
                        index._vecs[lo:] if index._by_rows else index._vecs[:, lo:],
                        index._by_rows,
                        n - lo,
                        self._q,
                    )
                tail_seqs = index._seq_arr[lo:n]
                live = tail_seqs >= 0
                if not live.all():
                    tail_vals, tail_seqs = tail_vals[live], tail_seqs[live]
                else:
                    tail_seqs = tail_seqs.copy()
            else:
                tail_vals, tail_seqs = np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        near_seqs = np.fromiter((s for s, _ in pairs), dtype=np.int64, count=len(pairs))
        vals = np.concatenate((near_vals.astype(np.float32, copy=False), tail_vals))
        seqs = np.concatenate((near_seqs, tail_seqs))
        neg = -vals
        if len(vals) > k:  # the k best, ties at the k-th included, then a stable sort of those
            kth = np.partition(neg, k - 1)[k - 1]
            pick = np.flatnonzero(neg <= kth)
            order = pick[np.argsort(neg[pick], kind="stable")][:k]
        else:
            order = np.argsort(neg, kind="stable")
        return list(zip(seqs[order].tolist(), vals[order].tolist(), strict=True))

    def scores(self, seqs: Iterable[int]) -> dict[int, float]:
        """Cosine of the query with each indexed seq among ``seqs``."""
        index = self._index
        with index._lock:
            get = index._rows.get
            pairs = [(s, r) for s in seqs if (r := get(s)) is not None]
            if not pairs:
                return {}
            if _np is None:
                known = self._py_all
                return {
                    s: v if (v := known.get(r)) is not None else self._py_dot(index._py[r])
                    for s, r in pairs
                }
            rows = [r for _, r in pairs]
            if self._all is not None and max(rows) < self._upto:
                vals = self._all[rows]
            else:
                vals = index._cosines(self._q, rows)
            return dict(zip([s for s, _ in pairs], vals.tolist(), strict=True))

"""The hashing embedder's batch path in numpy: the pure-Python vectors, bit for bit.

A batch is tokenised with one regular-expression pass (``text.words_separated``) and its words
become numbers through one dictionary; everything after that is array work. Each known word
keeps its key feature, its character n-grams and two CRC-32s, so a word pair's bucket comes
from its two words' numbers without building the pair's string: CRC-32 is linear, and
``crc32(a + b) == shift(crc32(a), len(b)) ^ crc32(b)``, where ``shift`` (feeding ``len(b)``
zero bytes) is four table look-ups.

``HashingEmbedder.embed_one`` is the reference: it adds each text's distinct features into
their buckets in the order they first appear, then sums the squares left to right. Here the
features of a batch are laid out in that same order, their first occurrences and counts are
found by sorting (one sort for words and n-grams, one for pairs), and ``bincount`` adds them in
array order (one addition after another, as Python does; the other places add 0.0, which
changes no sum), so the two paths give the same bits. ``tests/test_embed.py`` checks it.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..text import SEPARATOR, STOPWORDS, words_separated

_MAX_SHIFT = 64  # pair buckets from tables for second words up to this many bytes; longer: zlib
_DAMP_TABLE = 1 << 14  # counts (in quarters) up to this come from a table
_shift_tables: Any = None
_shift_lock = threading.Lock()


def _shift_table() -> Any:
    """``t[n, k, b]``: CRC-32's register after ``b << 8k`` is fed ``n`` zero bytes."""
    global _shift_tables
    with _shift_lock:
        if _shift_tables is None:
            base = zlib.crc32(b"\0")
            one = np.array(
                [[zlib.crc32(b"\0", b << (8 * k)) ^ base for b in range(256)] for k in range(4)],
                dtype=np.int64,
            )
            t = np.empty((_MAX_SHIFT + 1, 4, 256), dtype=np.int64)
            t[0] = np.arange(256, dtype=np.int64)[None, :] << (8 * np.arange(4))[:, None]
            for n in range(1, _MAX_SHIFT + 1):
                t[n] = _feed(one, t[n - 1], 0)
            _shift_tables = t.reshape(-1)
        return _shift_tables


def _feed(table: Any, crc: Any, base: Any) -> Any:
    """``crc`` after the zero bytes that ``table`` (from ``base``) stands for."""
    flat = table.reshape(-1)
    return (
        flat[base + (crc & 255)]
        ^ flat[base + 256 + ((crc >> 8) & 255)]
        ^ flat[base + 512 + ((crc >> 16) & 255)]
        ^ flat[base + 768 + ((crc >> 24) & 255)]
    )


class _Column:
    """A growing numpy array (amortised doubling)."""

    def __init__(self, dtype: Any) -> None:
        self.data = np.zeros(1024, dtype=dtype)
        self.n = 0

    def extend(self, values: list[Any]) -> None:
        end = self.n + len(values)
        if end > len(self.data):
            grown = np.zeros(max(2 * len(self.data), end), dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : end] = values
        self.n = end

    @property
    def view(self) -> Any:
        return self.data[: self.n]


def _firsts(key: Any) -> tuple[Any, Any]:
    """Indices of each distinct value's first occurrence in ``key`` (an int64 array of
    values >= 0) and how often it occurs, in the order of the values."""
    n = len(key)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    bits = max(1, (n - 1).bit_length())
    if int(key.max()).bit_length() + bits <= 62:
        # The position rides in the low bits: one plain sort finds groups and first positions.
        s = np.sort((key << bits) | np.arange(n, dtype=np.int64))
        g = s >> bits
        starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
        counts = np.diff(np.append(starts, n))
        return s[starts] & ((1 << bits) - 1), counts
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    return first, counts


class BatchHasher:
    """The numpy state of one :class:`~dwbase.embed.hashing.HashingEmbedder`."""

    def __init__(
        self,
        dim: int,
        word: Callable[[str], tuple[str, tuple[str, ...]]],
        damp: Callable[[float], float],
        limit: Callable[[], int],
    ) -> None:
        self.dim = dim
        self._word = word  # (key feature, n-gram features) of a word, as the Python path
        self._damp = damp
        self._limit = limit
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._wids: dict[str, int] = {SEPARATOR: 0}
        self._fids: dict[str, int] = {}
        # per word: stopword?, key feature, features (offset and count in _feats), and the
        # CRC-32 of "b:<stem> " (the pair it starts), of "<stem>" and its length in bytes
        # (the pair it ends). Word 0 is the separator between texts.
        self._stop = _Column(np.bool_)
        self._key = _Column(np.int64)
        self._fptr = _Column(np.int64)
        self._flen = _Column(np.int64)
        self._crc_a = _Column(np.int64)
        self._crc_b = _Column(np.int64)
        self._blen = _Column(np.int64)
        self._stems: list[bytes] = []
        self._feats = _Column(np.int64)  # every word's key feature, then its n-grams
        self._bucket = _Column(np.int64)  # per feature
        self._sign = _Column(np.float64)
        self._quarters = _Column(np.int64)  # what one occurrence counts: word 4, n-gram 1
        self._damped = np.zeros(1, dtype=np.float64)  # [q]: damp(q / 4)
        for col, v in zip(self._columns(), (False, 0, 0, 0, 0, 0, 0), strict=True):
            col.extend([v])
        self._stems.append(b"")

    def _columns(self) -> tuple[_Column, ...]:
        return (
            self._stop,
            self._key,
            self._fptr,
            self._flen,
            self._crc_a,
            self._crc_b,
            self._blen,
        )

    def _add_words(self, new: list[str]) -> None:
        """Number words seen for the first time (and their new features)."""
        if not new:
            return
        fids, wids, dim, word, crc32 = self._fids, self._wids, self.dim, self._word, zlib.crc32
        buckets: list[int] = []
        signs: list[float] = []
        stop: list[bool] = []
        quarters: list[int] = []
        keys: list[int] = []
        fptr: list[int] = []
        flen: list[int] = []
        crc_a: list[int] = []
        crc_b: list[int] = []
        blen: list[int] = []
        feats: list[int] = []
        at = self._feats.n
        b_colon = crc32(b"b:")
        for w in new:
            key, gs = word(w)
            s = key[2:].encode("utf-8")
            wids[w] = len(wids)
            self._stems.append(s)
            stop.append(w in STOPWORDS)
            fptr.append(at + len(feats))
            flen.append(1 + len(gs))
            crc_a.append(crc32(b" ", crc32(s, b_colon)))  # "b:<stem> "
            crc_b.append(crc32(s))
            blen.append(len(s))
            for i, feat in enumerate((key, *gs)):
                n = fids.get(feat)
                if n is None:
                    n = fids[feat] = len(fids)
                    h = crc32(feat.encode("utf-8"))  # as HashingEmbedder._bucket
                    buckets.append(h % dim)
                    signs.append(-1.0 if h & 0x80000000 else 1.0)
                    quarters.append(1 if i else 4)
                if not i:
                    keys.append(n)
                feats.append(n)
        added: tuple[list[Any], ...] = (stop, keys, fptr, flen, crc_a, crc_b, blen)
        for column, values in zip(self._columns(), added, strict=True):
            column.extend(values)
        self._feats.extend(feats)
        self._quarters.extend(quarters)
        self._bucket.extend(buckets)
        self._sign.extend(signs)

    def matrix(self, texts: Sequence[str]) -> Any:
        with self._lock:
            if len(self._fids) >= self._limit() or len(self._wids) >= self._limit():
                self._reset()  # between batches: numbering starts again
            return self._matrix(texts)

    def _matrix(self, texts: Sequence[str]) -> Any:
        n, dim = len(texts), self.dim
        tokens = words_separated(texts)
        get = self._wids.get
        ids = list(map(get, tokens))
        if None in ids:
            self._add_words(
                list(dict.fromkeys(t for t, i in zip(tokens, ids, strict=True) if i is None))
            )
            ids = list(map(self._wids.__getitem__, tokens))
        all_ids = np.array(ids, dtype=np.int64)
        sep = all_ids == 0
        text_of = np.cumsum(sep)[~sep]
        tw = all_ids[~sep]
        # stopwords are dropped, unless a text has nothing else (as HashingEmbedder._content)
        stop = self._stop.view[tw]
        content = np.bincount(text_of[~stop], minlength=n)
        keep = ~stop | (content[text_of] == 0)
        tw, row = tw[keep], text_of[keep]
        t = len(tw)
        out = np.zeros(n * dim, dtype=np.float64)
        if t:
            self._add(out, tw, row)
        mat = out.reshape(n, dim)
        sq = np.cumsum(mat * mat, axis=1)[:, -1]  # left to right, as embed_one
        norm = np.sqrt(sq)
        has = norm > 0
        mat[has] *= (1.0 / norm[has])[:, None]
        return mat

    def _add(self, out: Any, tw: Any, row: Any) -> None:
        """Add the features of the words ``tw`` (of the texts ``row``) into ``out``."""
        dim, t = self.dim, len(tw)
        first = np.ones(t, dtype=bool)
        first[1:] = row[1:] != row[:-1]
        later = (~first).astype(np.int64)
        flen = self._flen.view[tw]
        # Each word lays out [its key, the pair it ends (not for a text's first word), its
        # n-grams]: the order in which the Python path meets features.
        width = flen + later
        start = np.cumsum(width) - width
        total = int(start[-1] + width[-1])
        nf = max(1, self._bucket.n)
        # row * dim + bucket and the damped, signed weight of each feature at its first
        # occurrence in its text; elsewhere 0 and 0.0, which add nothing to bucket 0
        cell = np.zeros(total, dtype=np.int64)
        val = np.zeros(total, dtype=np.float64)
        buckets, signs = self._bucket.view, self._sign.view

        # keys and n-grams: feature j of word i is _feats[fptr[word] + j], at start[i] + j,
        # or one further for j > 0 after a pair
        n = int(flen.sum())
        at = np.arange(n, dtype=np.int64)
        before = np.cumsum(flen) - flen
        f = self._feats.view[at + np.repeat(self._fptr.view[tw] - before, flen)]
        pos = at + np.repeat(start + later - before, flen)
        pos[before] -= later
        frow = np.repeat(row, flen)
        i, counts = _firsts(frow * nf + f)
        fi = f[i]
        cell[pos[i]] = frow[i] * dim + buckets[fi]
        val[pos[i]] = signs[fi] * self._damp_of(counts * self._quarters.view[fi])

        # pairs, right after the key of their second word
        p = np.flatnonzero(later)
        if len(p):
            key = self._key.view[tw]
            pair = key[p - 1] * nf + key[p]
            if (int(row[-1]) + 1) * nf * nf >= 1 << 62:  # renumber the pairs to fit the sort
                pair = np.unique(pair, return_inverse=True)[1].reshape(-1)
            prow = row[p]
            i, counts = _firsts(prow * (int(pair.max()) + 1) + pair)
            b, sign = self._pairs(tw[p - 1][i], tw[p][i])
            at_pair = start[p][i] + 1
            cell[at_pair] = prow[i] * dim + b
            val[at_pair] = sign * self._damp_of(counts * 2)
        # in layout order: each text's features in the order they first appear
        out += np.bincount(cell, weights=val, minlength=len(out))

    def _pairs(self, prev: Any, cur: Any) -> tuple[Any, Any]:
        """Bucket and sign of the pairs "b:<stem of prev> <stem of cur>"."""
        a, n = self._crc_a.view[prev], self._blen.view[cur]
        short = n <= _MAX_SHIFT
        h = np.zeros(len(prev), dtype=np.int64)
        h[short] = _feed(_shift_table(), a[short], n[short] * 1024)
        h ^= self._crc_b.view[cur]
        for i in np.flatnonzero(~short).tolist():  # a second word longer than the tables
            h[i] = zlib.crc32(self._stems[int(cur[i])], int(a[i]))
        return h % self.dim, np.where(h & 0x80000000, -1.0, 1.0)

    def _damp_of(self, quarters: Any) -> Any:
        """``damp(q / 4)`` of each count of quarters, from a table of the counts seen."""
        top = int(quarters.max()) if len(quarters) else 0
        if top > _DAMP_TABLE:  # a text repeating one word thousands of times: no huge table
            levels, where = np.unique(quarters, return_inverse=True)
            damped = np.array([self._damp(q / 4) for q in levels.tolist()], dtype=np.float64)
            return damped[where.reshape(-1)]
        if top >= len(self._damped):
            known = len(self._damped)
            more = [self._damp(q / 4) for q in range(known, top + 1)]
            self._damped = np.concatenate((self._damped, np.array(more, dtype=np.float64)))
        return self._damped[quarters]

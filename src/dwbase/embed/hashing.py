"""Feature-hashing embedder: words, word pairs and character n-grams, no model needed.

Each feature is hashed (CRC-32, stable across processes) to a signed bucket; counts are
damped (``1 + log tf``) and the vector is L2-normalised, so a dot product is a cosine.

Words repeat across texts, so each word's stem and character n-grams, and each feature's
bucket, are computed once and kept in bounded caches. A batch of texts is embedded with numpy
when it is importable: the texts' features become index arrays and the vectors one matrix, the
same figures to the last bit as the pure-Python path, which runs inside the WASI component
(no numpy there). Both add each text's features into its buckets in the same order and sum the
squares left to right, so the two paths agree exactly.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

from ..text import STOPWORDS, stem, words

_np: Any
try:  # numpy is a normal dependency, but the WASI build has none.
    import numpy as _np
except ImportError:  # pragma: no cover - exercised inside the component
    _np = None

_CACHE_LIMIT = 200_000
_KEY, _PAIR, _GRAM = 1.0, 0.5, 0.25  # what one occurrence of a word, pair or n-gram counts


class HashingEmbedder:
    name = "hashing"
    version = "1"

    def __init__(self, dim: int = 256, *, ngram: int = 3) -> None:
        self.dim = dim
        self.ngram = ngram
        self._words: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._buckets: dict[str, tuple[int, float]] = {}
        # numpy path: features numbered once; their buckets and signs as growing arrays
        self._fids: dict[str, int] = {}
        self._word_fids: dict[str, tuple[int, str, tuple[int, ...]]] = {}
        self._fbucket: Any = None
        self._fsign: Any = None
        self._fweight: Any = None  # what one occurrence counts: word 1, pair 1/2, n-gram 1/4
        self._new: list[tuple[int, float, float]] = []  # numbered, not in the arrays yet
        self._damped: dict[float, float] = {}

    def _word(self, w: str) -> tuple[str, tuple[str, ...]]:
        info = self._words.get(w)
        if info is None:
            n = self.ngram
            padded = "<" + w + ">"
            grams = (
                tuple("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
                if len(padded) > n
                else ()
            )
            info = ("w:" + stem(w), grams)
            if len(self._words) >= _CACHE_LIMIT:
                self._words.clear()
            self._words[w] = info
        return info

    @staticmethod
    def _content(text: str) -> list[str]:
        ws = words(text)
        return [w for w in ws if w not in STOPWORDS] or ws

    def features(self, text: str) -> dict[str, float]:
        feats: dict[str, float] = {}
        prev = ""
        get = feats.get
        for w in self._content(text):
            key, grams = self._word(w)
            feats[key] = get(key, 0.0) + _KEY
            s = key[2:]
            if prev:
                pair = "b:" + prev + " " + s
                feats[pair] = get(pair, 0.0) + _PAIR
            prev = s
            for g in grams:
                feats[g] = get(g, 0.0) + _GRAM
        return feats

    def _bucket(self, feat: str) -> tuple[int, float]:
        h = zlib.crc32(feat.encode("utf-8"))
        b = (h % self.dim, -1.0 if h & 0x80000000 else 1.0)
        if len(self._buckets) >= _CACHE_LIMIT:
            self._buckets.clear()
        self._buckets[feat] = b
        return b

    def _damp(self, weight: float) -> float:
        out = self._damped.get(weight)
        if out is None:
            out = (1.0 + math.log(weight)) if weight >= 1.0 else weight
            if len(self._damped) < _CACHE_LIMIT:
                self._damped[weight] = out
        return out

    def embed_one(self, text: str) -> list[float]:
        """One text's vector, in pure Python (the WASI component's path)."""
        vec = [0.0] * self.dim
        buckets = self._buckets
        for feat, weight in self.features(text).items():
            b = buckets.get(feat) or self._bucket(feat)
            vec[b[0]] += b[1] * self._damp(weight)
        sq = 0.0
        for v in vec:  # left to right, as the numpy path's cumulative sum (not math.fsum)
            if v:
                sq += v * v
        norm = math.sqrt(sq)
        if norm > 0:
            inv = 1.0 / norm
            vec = [v * inv for v in vec]
        return vec

    # Below this many texts the numpy path costs more than it saves (its fixed cost per batch:
    # 273 us for one text against 79 us in Python, equal near 8 texts, 50 against 77 at 32).
    NUMPY_FROM = 8

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if _np is None or len(texts) < self.NUMPY_FROM:
            return [self.embed_one(t) for t in texts]
        return list(self._matrix(texts).tolist())

    def embed_packed(self, texts: Sequence[str]) -> list[bytes]:
        """The vectors as float32 bytes (what the store keeps), without Python float lists."""
        if (
            _np is None
            or len(texts) < self.NUMPY_FROM
            or type(self).embed is not HashingEmbedder.embed  # a subclass's own
        ):
            from ..vector import pack

            return [pack(v) for v in self.embed(texts)]
        mat = self._matrix(texts).astype(_np.float32)
        return [row.tobytes() for row in mat]

    # ------------------------------------------------------------------ numpy path

    def _fid(self, feat: str) -> int:
        """The feature's number; a new one's bucket, sign and weight go to the lists that
        ``_arrays`` turns into numpy arrays once per batch."""
        fid = self._fids.get(feat)
        if fid is None:
            fid = len(self._fids)
            h = zlib.crc32(feat.encode("utf-8"))  # as _bucket, without its cache
            self._new.append(
                (
                    h % self.dim,
                    -1.0 if h & 0x80000000 else 1.0,
                    _KEY if feat[0] == "w" else _PAIR if feat[0] == "b" else _GRAM,
                )
            )
            self._fids[feat] = fid
        return fid

    def _arrays(self) -> None:
        """Append the features numbered since the last batch to the numpy arrays."""
        if not self._new:
            return
        np = _np
        n, add = len(self._fids) - len(self._new), len(self._new)
        if self._fbucket is None or n + add > len(self._fbucket):
            cap = max(1024, 2 * (n + add))
            grown_b = np.zeros(cap, dtype=np.int64)
            grown_s = np.zeros(cap, dtype=np.float64)
            grown_w = np.zeros(cap, dtype=np.float64)
            if self._fbucket is not None:
                grown_b[:n], grown_s[:n], grown_w[:n] = (
                    self._fbucket[:n],
                    self._fsign[:n],
                    self._fweight[:n],
                )
            self._fbucket, self._fsign, self._fweight = grown_b, grown_s, grown_w
        b, sign, w = zip(*self._new, strict=True)
        self._fbucket[n : n + add] = b
        self._fsign[n : n + add] = sign
        self._fweight[n : n + add] = w
        self._new.clear()

    def _word_ids(self, w: str) -> tuple[int, str, tuple[int, ...]]:
        info = self._word_fids.get(w)
        if info is None:
            key, grams = self._word(w)
            info = (self._fid(key), key[2:], tuple(self._fid(g) for g in grams))
            self._word_fids[w] = info
        return info

    def _matrix(self, texts: Sequence[str]) -> Any:
        """The vectors of ``texts`` as a float64 matrix: the same figures as ``embed_one``."""
        np = _np
        if len(self._fids) >= _CACHE_LIMIT:  # between batches: numbering starts again
            self._fids.clear()
            self._word_fids.clear()
            self._new.clear()
        fids: list[int] = []
        counts: list[int] = []
        word_ids, fid, known = self._word_ids, self._fid, self._fids.get
        winfo = self._word_fids.get
        append, extend = fids.append, fids.extend
        for text in texts:
            start = len(fids)
            prev = ""
            for w in self._content(text):
                info = winfo(w) or word_ids(w)
                append(info[0])
                if prev:
                    pair = "b:" + prev + " " + info[1]
                    append(known(pair) or fid(pair))
                prev = info[1]
                extend(info[2])
            counts.append(len(fids) - start)
        self._arrays()
        n = len(texts)
        mat = np.zeros((n, self.dim), dtype=np.float64)
        if fids:
            rows = np.repeat(np.arange(n, dtype=np.int64), counts)
            f = np.asarray(fids, dtype=np.int64)
            # One entry per (text, feature), in the order each first appears in its text
            # (a dict's order in features()); term weights are multiples of 1/4, so sums are
            # exact in any order.
            keys = rows * (int(f.max()) + 1) + f
            uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            tf = np.bincount(inverse.ravel(), weights=self._fweight[f], minlength=len(uniq))
            order = np.argsort(first, kind="stable")
            pos = first[order]
            levels = np.unique(tf)
            damped = np.array([self._damp(float(x)) for x in levels.tolist()])
            vals = self._fsign[f[pos]] * damped[np.searchsorted(levels, tf[order])]
            np.add.at(mat, (rows[pos], self._fbucket[f[pos]]), vals)  # in order, unbuffered
        sq = np.cumsum(mat * mat, axis=1)[:, -1]  # left to right, as embed_one
        norm = np.sqrt(sq)
        has = norm > 0
        mat[has] *= (1.0 / norm[has])[:, None]
        return mat

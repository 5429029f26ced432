"""Feature-hashing embedder: words, word pairs and character n-grams, no model needed.

Each feature is hashed (CRC-32, stable across processes) to a signed bucket; counts are
damped (``1 + log tf``) and the vector is L2-normalised, so a dot product is a cosine.

Words repeat across texts, so each word's stem and character n-grams, and each feature's
bucket, are computed once and kept in bounded caches. A batch of texts is embedded with numpy
when it is importable (``hashbatch``): the same figures to the last bit as the pure-Python
path, which runs inside the WASI component (no numpy there). Both add each text's features
into its buckets in the same order and sum the squares left to right, so the two paths agree
exactly.
"""

from __future__ import annotations

import math
import threading
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
        self._damped: dict[float, float] = {}
        self._batch: Any = None  # the numpy path's state (hashbatch.BatchHasher), made lazily
        self._batch_lock = threading.Lock()

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

    # Below this many texts the numpy path's fixed cost per batch outweighs what it saves
    # (the two cost the same between 4 and 8 short texts).
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

    def _matrix(self, texts: Sequence[str]) -> Any:
        """The vectors of ``texts`` as a float64 matrix: the same figures as ``embed_one``."""
        batch = self._batch
        if batch is None:
            with self._batch_lock:
                if self._batch is None:
                    from .hashbatch import BatchHasher

                    self._batch = BatchHasher(
                        self.dim, self._word, self._damp, lambda: _CACHE_LIMIT
                    )
                batch = self._batch
        return batch.matrix(texts)

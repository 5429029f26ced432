"""Feature-hashing embedder: words, word pairs and character n-grams, no model needed.

Each feature is hashed (CRC-32, stable across processes) to a signed bucket; counts are
damped (``1 + log tf``) and the vector is L2-normalised, so a dot product is a cosine.

Words repeat across texts, so each word's stem and character n-grams, and each feature's
bucket, are computed once and kept in bounded caches: embedding stays pure Python (it runs
inside the WASI component) and costs a few dictionary lookups per word.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

from ..text import STOPWORDS, stem, words

_CACHE_LIMIT = 200_000


class HashingEmbedder:
    name = "hashing"
    version = "1"

    def __init__(self, dim: int = 256, *, ngram: int = 3) -> None:
        self.dim = dim
        self.ngram = ngram
        self._words: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._buckets: dict[str, tuple[int, float]] = {}

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

    def features(self, text: str) -> dict[str, float]:
        feats: dict[str, float] = {}
        ws = [w for w in words(text) if w not in STOPWORDS] or words(text)
        prev = ""
        get = feats.get
        for w in ws:
            key, grams = self._word(w)
            feats[key] = get(key, 0.0) + 1.0
            s = key[2:]
            if prev:
                pair = "b:" + prev + " " + s
                feats[pair] = get(pair, 0.0) + 0.5
            prev = s
            for g in grams:
                feats[g] = get(g, 0.0) + 0.25
        return feats

    def _bucket(self, feat: str) -> tuple[int, float]:
        h = zlib.crc32(feat.encode("utf-8"))
        b = (h % self.dim, -1.0 if h & 0x80000000 else 1.0)
        if len(self._buckets) >= _CACHE_LIMIT:
            self._buckets.clear()
        self._buckets[feat] = b
        return b

    def embed_one(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        buckets = self._buckets
        log = math.log
        for feat, weight in self.features(text).items():
            b = buckets.get(feat) or self._bucket(feat)
            vec[b[0]] += b[1] * ((1.0 + log(weight)) if weight >= 1.0 else weight)
        norm = math.sqrt(sum(v * v for v in vec))
        if norm > 0:
            inv = 1.0 / norm
            vec = [v * inv for v in vec]
        return vec

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]

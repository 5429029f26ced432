"""Feature-hashing embedder: words, word pairs and character n-grams, no model needed.

Each feature is hashed (CRC-32, stable across processes) to a signed bucket; counts are
damped (``1 + log tf``) and the vector is L2-normalised, so a dot product is a cosine.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

from ..text import STOPWORDS, stem, words


class HashingEmbedder:
    name = "hashing"
    version = "1"

    def __init__(self, dim: int = 256, *, ngram: int = 3) -> None:
        self.dim = dim
        self.ngram = ngram

    def features(self, text: str) -> dict[str, float]:
        feats: dict[str, float] = {}
        ws = [w for w in words(text) if w not in STOPWORDS] or words(text)
        prev = ""
        n = self.ngram
        for w in ws:
            s = stem(w)
            feats["w:" + s] = feats.get("w:" + s, 0.0) + 1.0
            if prev:
                key = "b:" + prev + " " + s
                feats[key] = feats.get(key, 0.0) + 0.5
            prev = s
            padded = "<" + w + ">"
            if len(padded) > n:
                for i in range(len(padded) - n + 1):
                    key = "c:" + padded[i : i + n]
                    feats[key] = feats.get(key, 0.0) + 0.25
        return feats

    def embed_one(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        dim = self.dim
        for feat, weight in self.features(text).items():
            h = zlib.crc32(feat.encode("utf-8"))
            value = (1.0 + math.log(weight)) if weight >= 1.0 else weight
            if h & 0x80000000:
                vec[h % dim] -= value
            else:
                vec[h % dim] += value
        norm = math.sqrt(sum(v * v for v in vec))
        if norm > 0:
            inv = 1.0 / norm
            vec = [v * inv for v in vec]
        return vec

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]

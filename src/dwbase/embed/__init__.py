"""Embedders turn text into vectors. The default needs no model download.

Chosen by name (``Options.embedder``, config ``embedder =``, ``DWBASE_EMBEDDER``):

* ``hashing`` (default): feature hashing of words, word pairs and character n-grams;
* ``minilm`` or ``sentence-transformers:<model or path>``: the ``embed`` extra;
* ``openai:<base url>[#<model>]``: any OpenAI-compatible ``/v1/embeddings`` endpoint.
"""

from __future__ import annotations

from .base import Embedder
from .hashing import HashingEmbedder

__all__ = ["EMBEDDER_NAMES", "Embedder", "HashingEmbedder", "embedder_id", "get_embedder"]

EMBEDDER_NAMES = ("hashing", "minilm", "sentence-transformers:<model>", "openai:<url>[#<model>]")


def get_embedder(name: str) -> Embedder:
    """Build an embedder from its configured name (``hashing`` is the default).

    >>> get_embedder("hashing").name
    'hashing'
    """
    from ..errors import InvalidInputError

    spec = (name or "").strip()
    low = spec.lower()
    if low in ("hashing", "default", ""):
        return HashingEmbedder()
    if low in ("minilm", "all-minilm-l6-v2"):
        from .sentence import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder("minilm")
    for prefix in ("sentence-transformers:", "st:"):
        if low.startswith(prefix):
            from .sentence import SentenceTransformerEmbedder

            return SentenceTransformerEmbedder(spec[len(prefix) :] or "minilm")
    if low.startswith("openai:"):
        from .openai import OpenAIEmbedder

        return OpenAIEmbedder(spec[len("openai:") :])
    raise InvalidInputError(
        f"unknown embedder {name!r}; available: {', '.join(EMBEDDER_NAMES)}", field="embedder"
    )


def embedder_id(embedder: Embedder) -> str:
    """``name:version:dim``: what the store records to notice an embedder change."""
    return f"{embedder.name}:{embedder.version}:{embedder.dim}"

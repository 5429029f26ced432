"""Embedders turn text into vectors. The default needs no model download.

Chosen by name (``Options.embedder``, config ``embedder =``, ``DWBASE_EMBEDDER``):

* ``hashing`` (default): feature hashing of words, word pairs and character n-grams;
* ``minilm`` or ``sentence-transformers:<model or path>``: the ``embed`` extra;
* ``openai:<base url>[#<model>]``: any OpenAI-compatible ``/v1/embeddings`` endpoint.
"""

from __future__ import annotations

from .base import Embedder
from .hashing import HashingEmbedder

__all__ = [
    "EMBEDDER_NAMES",
    "Embedder",
    "HashingEmbedder",
    "embedder_id",
    "get_embedder",
    "resolve_embedder",
]

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


def resolve_embedder(
    given: Embedder | None, recorded: str | None, *, reembed: bool = False
) -> Embedder:
    """The embedder an engine uses on a store that records ``recorded`` (``name:version:dim``).

    No embedder given: the store's own (hashing for a new store). One given that differs from
    the store's is a clear error, unless ``reembed`` asks to re-embed every atom with it:
    opening a store never changes it by surprise.
    """
    from ..errors import ConflictError

    if given is not None:
        if recorded is None or reembed or embedder_id(given) == recorded:
            return given
        raise ConflictError(
            f"this store's atoms were embedded with {recorded!r}, not {embedder_id(given)!r}. "
            "Open it without an embedder to use its own, or re-embed every atom on purpose: "
            "dwbase.open(path, embedder=..., reembed=True) (node config: reembed = true)",
            recorded=recorded,
            given=embedder_id(given),
        )
    if recorded is None:
        return HashingEmbedder()
    return _from_id(recorded)


def _from_id(recorded: str) -> Embedder:
    from ..errors import ConflictError

    name, _, rest = recorded.rpartition(":")  # rest: dim
    name, _, version = name.rpartition(":")
    try:
        dim = int(rest)
    except ValueError:
        dim = -1
    built: Embedder | None = None
    if name == "hashing" and version == HashingEmbedder.version and dim > 0:
        built = HashingEmbedder(dim)
    elif name and name != "hashing":
        try:
            built = get_embedder(name)
        except Exception:  # the extra that makes it is not installed, or a custom embedder
            built = None
    if built is None or built.name != name or built.dim != dim:
        raise ConflictError(
            f"this store's atoms were embedded with {recorded!r}, which cannot be rebuilt "
            "here from its name; open it with that embedder (dwbase.open(path, embedder=...)), "
            "or re-embed every atom with another one on purpose (reembed=True)",
            recorded=recorded,
        )
    return built

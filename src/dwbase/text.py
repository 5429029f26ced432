"""Word tokenisation shared by the lexical index, the embedder and quarantine."""

from __future__ import annotations

import re
import unicodedata

_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    """.split()  # noqa: SIM905
)


def words(text: str) -> list[str]:
    """Lower-cased words with diacritics removed, in order."""
    if text.isascii():  # the common case: nothing to decompose, no curly apostrophes
        return _WORD_RE.findall(text.lower())
    norm = unicodedata.normalize("NFKD", text)
    norm = "".join(c for c in norm if not unicodedata.combining(c)).lower()
    return [w.replace("’", "'") for w in _WORD_RE.findall(norm)]


def query_terms(text: str, *, max_terms: int = 32) -> list[str]:
    """Distinct content words of a question (stopwords dropped unless nothing else is left)."""
    ws = words(text)
    content = [w for w in ws if w not in STOPWORDS]
    chosen = content or ws
    out = list(dict.fromkeys(w.split("'")[0] for w in chosen if w))
    return out[:max_terms]


def stem(word: str) -> str:
    """A light suffix stripper (used where SQLite's porter tokenizer is not available)."""
    for suffix in ("ingly", "edly", "ies", "ing", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            return base + "y" if suffix == "ies" else base
    return word

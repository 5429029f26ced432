"""Word tokenisation shared by the lexical index, the embedder and quarantine."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
SEPARATOR = "\x00"  # never part of a word: \W
# ASCII characters that can be in a word (after lower-casing) stay, the rest become spaces.
_ASCII_WORDS = str.maketrans(
    {
        c: chr(c).lower() if chr(c).isupper() else " "
        for c in range(128)
        if not (chr(c).islower() or chr(c).isdigit() or chr(c) in "'\x00")
    }
)

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


def words_separated(texts: Sequence[str]) -> list[str]:
    """``words(text)`` of each text in turn, each followed by :data:`SEPARATOR`.

    ASCII texts with no NUL in them (the common case) are split in one pass over the whole
    batch: every character that cannot be in a word becomes a space, then ``str.split``;
    only the pieces holding an apostrophe go through the regular expression.
    """
    joined = " \x00 ".join(texts) + " \x00"
    if not joined.isascii() or joined.count(SEPARATOR) != len(texts):
        out: list[str] = []
        for text in texts:
            out.extend(words(text))
            out.append(SEPARATOR)
        return out
    pieces = joined.translate(_ASCII_WORDS).split()
    if "'" not in joined:
        return pieces
    fixed: list[str] = []
    for piece in pieces:
        if "'" in piece:
            fixed.extend(_WORD_RE.findall(piece))
        else:
            fixed.append(piece)
    return fixed


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

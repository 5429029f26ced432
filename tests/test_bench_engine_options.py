"""The engine benchmark's corpus, many-worlds, footprint, CPU, peer and chart options, end to end
at tiny sizes (the figures are not judged, only that each one is measured and reported)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "engine.py"
TINY = [
    "--batch-size",
    "50",
    "--single-n",
    "3",
    "--full-n",
    "2",
    "--queries",
    "3",
    "--warmup",
    "1",
    "--no-chroma",
    "--no-progress",
]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dwbase_bench_engine_options", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[str, dict[str, Any]]:
    out_json = tmp_path / "bench.json"
    rc = _load().main([*args, *TINY, "--json", str(out_json)])
    assert rc == 0
    data: dict[str, Any] = json.loads(out_json.read_text())
    return capsys.readouterr().out, data


def test_chat_corpus_payloads_and_questions_have_chat_lengths() -> None:
    corpus = _load().Corpus(11, style="chat")
    words = [len(corpus.sentence().split()) for _ in range(300)]
    assert min(words) >= 10 and max(words) <= 31  # 10-30 words, sometimes a number besides
    assert max(words) > 20  # not the short corpus's 5-16
    questions = [corpus.question().rstrip("?").split() for _ in range(200)]
    assert all(3 <= len(q) <= 8 + 2 for q in questions)  # 3-8 words behind a question start
    # Zipf: the most common word is far more frequent than the median one.
    from collections import Counter

    counts = Counter(w for _ in range(300) for w in corpus.sentence().split())
    ranked = [c for _, c in counts.most_common()]
    assert ranked[0] > 20 * ranked[len(ranked) // 2]
    with pytest.raises(ValueError, match="corpus style"):
        _load().Corpus(1, style="long")


def test_both_corpora_are_reported_with_cpu_footprint_and_open_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, data = _run(tmp_path, capsys, "--sizes", "60,120", "--corpus", "both", "--no-lancedb")
    assert "# corpus: short" in out and "# corpus: chat" in out
    assert out.count("## ask (top 10, one world)") == 2
    assert "lancedb NOT MEASURED: skipped by --no-lancedb" in out
    assert set(data["corpora"]) == {"short", "chat"}
    assert data["corpus"] == "short"
    assert data["dwbase"] == data["corpora"]["short"]["dwbase"]  # the JSON's old shape kept
    for style, section in data["corpora"].items():
        dw = section["dwbase"]
        assert dw["batch"]["items"] == 120, style
        assert dw["batch"]["cpu_us_per_item"] > 0
        assert dw["ask"]["120"]["n"] == 3 and dw["ask"]["120"]["cpu_ms"] > 0
        assert dw["remember_normal"]["cpu_ms"] > 0
        assert section["floor"]["fts_query"]["120"]["cpu_ms"] >= 0
        assert section["numpy"]["120"]["cpu_ms"] >= 0
        assert dw["replay"]["120"]["cpu_s"] >= 0
        foot = dw["footprint"]["120"]
        assert foot["atoms"] == 120 and foot["disk_per_atom"] > 100
        if sys.platform.startswith("linux"):
            assert foot["rss_bytes"] > 0 and "rss_per_atom" in foot
        assert 0 < dw["open"]["60"]["open_s"] <= dw["open"]["60"]["first_query_s"]
        assert section["floor"]["footprint"]["120"]["disk_per_atom"] > 0
    chat_q = data["corpora"]["chat"]["dwbase"]["ask"]["60"]
    assert chat_q["p50_ms"] <= chat_q["p95_ms"]


def test_many_worlds_phase_compares_one_world_in_many_with_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--sizes", "40", "--corpus", "chat", "--worlds", "6", "--world-size", "20"]
    out, data = _run(tmp_path, capsys, *args, "--no-lancedb")
    w = data["worlds"]
    assert w["worlds"] == 6 and w["world_size"] == 20 and w["target"] == "bench:w00003"
    assert w["alone"]["n"] == 3 and w["many"]["n"] == 3
    assert w["alone"]["cpu_ms"] > 0 and w["many"]["cpu_ms"] > 0
    assert w["many_footprint"]["atoms"] == 120 and w["alone_footprint"]["atoms"] == 20
    assert w["p95_ratio"] == pytest.approx(w["many"]["p95_ms"] / w["alone"]["p95_ms"])
    assert "## many worlds (6 worlds x 20 atoms" in out
    assert data["goals"][-1]["goal"].startswith("ask p95 in 1 of 6 worlds")
    assert "chroma NOT MEASURED: skipped by --no-chroma" in out


def test_concurrency_phase_reports_askers_alone_and_with_each_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--sizes", "60", "--concurrency", "0.3", "--askers", "2", "--no-lancedb"]
    out, data = _run(tmp_path, capsys, *args)
    c = data["concurrency"]
    assert c["atoms"] == 60 and c["askers"] == 2
    assert c["ask_only"]["atoms_written_per_s"] == 0
    for name in ("single_writer", "bulk_writer"):
        x = c[name]
        assert x["asks_per_s"] > 0 and x["atoms_written_per_s"] > 0
        assert x["p95_ratio"] == pytest.approx(x["p95_ms"] / c["ask_only"]["p95_ms"])
    assert c["bulk_writer"]["atoms_written_per_s"] > c["single_writer"]["atoms_written_per_s"]
    assert "## asks while writes stream in: 60 atoms, 2 askers" in out
    goals = [g["goal"] for g in data["goals"]]
    assert "2 askers + bulk writer: p95 <= 2x, max <= 1 s" in goals


def test_lancedb_is_measured_beside_dwbase_with_the_same_vectors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, data = _run(tmp_path, capsys, "--sizes", "40,80")
    if not (_importable("lancedb") and _importable("pyarrow")):
        assert "lancedb NOT MEASURED: lancedb cannot be imported" in out
        return
    lance = data["lancedb"]
    assert lance["batch"]["items"] == 80 and lance["batch"]["cpu_us_per_item"] > 0
    assert lance["query"]["80"]["n"] == 3 and lance["single"]["n"] == 3
    assert lance["footprint"]["80"]["disk_per_atom"] > 0
    assert 0 < lance["open"]["80"]["open_s"] <= lance["open"]["80"]["first_query_s"]
    assert "lancedb search top-10 (exact scan)" in out
    assert "dwbase ask p95 at 80 vs lancedb" in out


def test_charts_are_written_as_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    charts = tmp_path / "charts"
    out, data = _run(tmp_path, capsys, "--sizes", "40,80", "--no-lancedb", "--charts", str(charts))
    if not _importable("matplotlib"):
        assert "chart: NOT WRITTEN: matplotlib cannot be imported" in out
        return
    names = {p.name for p in charts.glob("*.png")}
    assert names == {"ask_short.png", "ingest_short.png", "open_short.png"}
    assert (charts / "ask_short.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["charts"] == [
        str(charts / n) for n in ("ask_short.png", "ingest_short.png", "open_short.png")
    ]


def test_a_missing_peer_is_reported_not_measured_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lancedb", None)  # import lancedb now raises ImportError
    out, data = _run(tmp_path, capsys, "--sizes", "50")
    assert "lancedb" not in data
    assert "lancedb cannot be imported" in data["lancedb_skipped"]
    assert "lancedb NOT MEASURED: lancedb cannot be imported" in out
    assert data["dwbase"]["ask"]["50"]["n"] == 3  # everything else still measured


def test_sizes_past_a_million_are_refused() -> None:
    with pytest.raises(SystemExit):
        _load().parse_args(["--sizes", "1000,2000000"])

"""The embedded CLI: remember, ask, replay, inspect, list-worlds over a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dwbase

from .conftest import Run, assert_error, ids, ok_json, remember


def test_remembered_atom_is_found_by_ask_and_inspect(dw: Run) -> None:
    aid = remember(dw, "--world", "demo", "--text", "checkout latency 820ms", "--importance", "0.9")
    remember(dw, "--world", "demo", "--text", "the cafeteria serves soup on friday")

    answer = ok_json(dw("ask", "--world", "demo", "--json", "why is checkout slow?"))
    assert answer["world"] == "demo"
    assert answer["hits"][0]["atom"]["id"] == aid
    assert set(answer["hits"][0]["parts"]) >= {"lexical", "recency", "importance"}

    atom = ok_json(dw("inspect", aid, "--json"))
    assert atom["id"] == aid
    assert json.loads(atom["payload_json"]) == {"text": "checkout latency 820ms"}
    assert atom["importance"] == 0.9
    assert atom["worker"] == "cli"


def test_remember_passes_every_field_through(dw: Run, data_dir: Path) -> None:
    first = remember(dw, "-w", "w1", "--text", "old plan")
    aid = remember(
        dw,
        "-w",
        "w1",
        "--worker",
        "agent-7",
        "--kind",
        "plan",
        "--payload",
        '{"step": 2, "text": "new plan"}',
        "--importance",
        "0.25",
        "--label",
        "a",
        "--label",
        "b",
        "--flag",
        "f",
        "--link",
        f"supersedes:{first}",
        "--link",
        first,
        "--timestamp",
        "2024-05-01T12:00:00+02:00",
    )
    with dwbase.open(data_dir) as db:
        atom = db.get(aid)
    assert atom.worker == "agent-7"
    assert atom.kind == "plan"
    assert atom.payload == {"step": 2, "text": "new plan"}
    assert atom.importance == 0.25
    assert atom.labels == ("a", "b")
    assert atom.flags == ("f",)
    assert [(x.kind, x.target) for x in atom.links] == [
        ("supersedes", first),
        ("references", first),
    ]
    assert atom.timestamp == "2024-05-01T10:00:00.000000Z"


def test_payload_can_come_from_a_file(dw: Run, tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"text": "from a file"}', encoding="utf-8")
    aid = remember(dw, "-w", "demo", "--payload", f"@{f}")
    assert json.loads(ok_json(dw("inspect", aid, "--json"))["payload_json"]) == {
        "text": "from a file"
    }


def test_replay_is_in_order_and_applies_every_filter(dw: Run) -> None:
    a = remember(dw, "-w", "log", "--text", "one", "--timestamp", "2024-01-01T00:00:00Z")
    b = remember(
        dw,
        "-w",
        "log",
        "--text",
        "two",
        "--kind",
        "action",
        "--label",
        "x",
        "--timestamp",
        "2024-01-02T00:00:00Z",
    )
    c = remember(
        dw,
        "-w",
        "log",
        "--text",
        "three",
        "--label",
        "x",
        "--flag",
        "hot",
        "--timestamp",
        "2024-01-03T00:00:00Z",
    )
    assert ids(ok_json(dw("replay", "-w", "log", "--json"))) == [a, b, c]
    assert ids(ok_json(dw("replay", "-w", "log", "--json", "--kind", "action"))) == [b]
    assert ids(ok_json(dw("replay", "-w", "log", "--json", "--label", "x"))) == [b, c]
    assert ids(ok_json(dw("replay", "-w", "log", "--json", "--flag", "hot"))) == [c]
    assert ids(
        ok_json(
            dw(
                "replay",
                "-w",
                "log",
                "--json",
                "--since",
                "2024-01-02T00:00:00Z",
                "--until",
                "2024-01-02T23:00:00+00:00",
            )
        )
    ) == [b]
    assert ids(ok_json(dw("replay", "-w", "log", "--json", "--limit", "2"))) == [a, b]
    assert ids(ok_json(dw("replay", "-w", "log", "--json", "--after", a))) == [b, c]


def test_replay_current_only_hides_superseded_atoms(dw: Run) -> None:
    old = remember(dw, "-w", "facts", "--text", "the door code is 1234")
    new = remember(
        dw, "-w", "facts", "--text", "the door code is 9999", "--link", f"supersedes:{old}"
    )
    assert ids(ok_json(dw("replay", "-w", "facts", "--json"))) == [old, new]
    assert ids(ok_json(dw("replay", "-w", "facts", "--json", "--current-only"))) == [new]


def test_replay_as_of_reads_what_the_store_knew_then(dw: Run) -> None:
    first = remember(dw, "-w", "t", "--text", "first")
    recorded = ok_json(dw("inspect", first, "--json"))["recorded_at"]
    remember(dw, "-w", "t", "--text", "second")
    assert ids(ok_json(dw("replay", "-w", "t", "--json", "--as-of", recorded))) == [first]


def test_list_worlds_hides_archived_worlds_unless_asked(dw: Run, data_dir: Path) -> None:
    remember(dw, "-w", "alpha", "--text", "a")
    remember(dw, "-w", "beta", "--text", "b")
    with dwbase.open(data_dir) as db:
        db.archive_world("beta")
    assert ok_json(dw("list-worlds", "--json")) == ["alpha"]
    assert ok_json(dw("list-worlds", "--json", "--include-archived")) == ["alpha", "beta"]


def test_human_output_shows_tables(dw: Run) -> None:
    aid = remember(dw, "-w", "demo", "--text", "checkout latency 820ms", "--label", "latency")
    result = dw("replay", "-w", "demo")
    assert result.exit_code == 0
    assert aid in result.stdout and "checkout latency 820ms" in result.stdout
    assert "1 atom(s)" in result.stdout
    result = dw("ask", "-w", "demo", "checkout")
    assert result.exit_code == 0 and aid in result.stdout and "score" in result.stdout
    result = dw("list-worlds")
    assert result.exit_code == 0 and "demo" in result.stdout
    result = dw("inspect", aid)
    assert result.exit_code == 0 and "latency" in result.stdout
    result = dw("remember", "-w", "demo", "--text", "x")
    assert result.exit_code == 0 and result.stdout.startswith("remembered ")


def test_data_dir_comes_from_the_environment(cli: Run, data_dir: Path) -> None:
    env = {"DWBASE_DATA_DIR": str(data_dir)}
    aid = ok_json(cli("remember", "-w", "demo", "--text", "env", "--json", env=env))["id"]
    assert ids(ok_json(cli("replay", "-w", "demo", "--json", env=env))) == [aid]


def test_invalid_importance_is_refused_with_exit_2_and_nothing_stored(dw: Run) -> None:
    remember(dw, "-w", "demo", "--text", "seed")
    for bad in ("1.7", "-0.1", "nan"):
        assert_error(
            dw("remember", "-w", "demo", "--text", "x", "--importance", bad),
            "invalid_input",
            2,
            "importance",
        )
    assert_error(
        dw("remember", "-w", "demo", "--text", "x", "--importance", "abc"),
        "invalid_input",
        2,
        "--importance",
    )
    assert len(ok_json(dw("replay", "-w", "demo", "--json"))) == 1


def test_bad_input_gives_a_coded_error_never_a_traceback(dw: Run) -> None:
    remember(dw, "-w", "demo", "--text", "seed")
    assert_error(dw("remember", "-w", "demo", "--payload", "{oops"), "invalid_input", 2, "JSON")
    assert_error(dw("remember", "-w", "demo", "--payload", "[1]"), "invalid_input", 2, "object")
    assert_error(dw("remember", "-w", "demo", "--payload", "{}", "--text", "x"), "invalid_input", 2)
    assert_error(dw("remember", "-w", "demo"), "invalid_input", 2, "--payload", "--text")
    assert_error(dw("remember", "-w", "bad world!", "--text", "x"), "invalid_input", 2, "world")
    assert_error(
        dw("remember", "-w", "demo", "--text", "x", "--kind", "dream"), "invalid_input", 2, "dream"
    )
    assert_error(
        dw("remember", "-w", "demo", "--text", "x", "--timestamp", "yesterday"),
        "invalid_input",
        2,
        "timestamp",
    )
    assert_error(
        dw("remember", "-w", "demo", "--link", "supersede:abc"), "invalid_input", 2, "supersede"
    )
    assert_error(dw("remember", "--text", "no world"), "invalid_input", 2, "--world")
    assert_error(dw("replay", "-w", "demo", "--since", "soon"), "invalid_input", 2, "since")
    assert_error(dw("replay", "-w", "demo", "--limit", "0"), "invalid_input", 2, "limit")
    assert_error(dw("ask", "-w", "demo", "q", "--rank", "vibes"), "invalid_input", 2, "rank")
    assert_error(dw("frobnicate"), "invalid_input", 2, "frobnicate")


def test_missing_atoms_and_stores_are_not_found_with_exit_1(
    dw: Run, cli: Run, tmp_path: Path
) -> None:
    remember(dw, "-w", "demo", "--text", "seed")
    assert_error(dw("inspect", "no-such-id"), "not_found", 1, "no-such-id")
    empty = tmp_path / "typo"
    assert_error(cli("--data-dir", str(empty), "replay", "-w", "demo"), "not_found", 1)
    assert not empty.exists(), "a read command must not create a store"
    assert_error(cli("replay", "-w", "demo"), "invalid_input", 2, "--data-dir")


def test_every_command_has_help_with_an_example(cli: Run) -> None:
    from dwbase.cli import command

    def walk(cmd: object, path: list[str]) -> list[list[str]]:
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [path]
        out: list[list[str]] = [path]
        for name, sub in sorted(subs.items()):
            out.extend(walk(sub, [*path, name]))
        return out

    paths = walk(command(), [])
    assert ["remember"] in paths and ["list-worlds"] in paths
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0, (path, result.stderr)
        assert "Example" in result.stdout, f"`dwbase {' '.join(path)} --help` has no example"


def test_python_dash_m_dwbase_runs_the_same_command(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DWBASE_")}
    base = [sys.executable, "-m", "dwbase", "--data-dir", str(store)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    done = run("remember", "-w", "demo", "--text", "checkout latency 820ms", "--json")
    assert done.returncode == 0, done.stderr
    aid = json.loads(done.stdout)["id"]
    done = run("ask", "-w", "demo", "checkout", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"][0]["atom"]["id"] == aid
    done = run("remember", "-w", "demo", "--text", "x", "--importance", "7")
    assert done.returncode == 2
    assert done.stderr.startswith("error[invalid_input]: importance 7.0 is outside [0, 1]")
    assert "Traceback" not in done.stderr
    done = run("inspect", "missing")
    assert done.returncode == 1 and "error[not_found]" in done.stderr

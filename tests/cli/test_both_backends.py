"""Every CLI command on both backends: an embedded store (``--data-dir``) and a real node
(``--api``, uvicorn on 127.0.0.1).

The command list comes from the Typer app itself, so a new command fails
``test_every_command_is_classified`` until it is put in one of the tables below and the
scenario runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from dwbase.cli import command
from dwbase.config import Settings, load_settings
from dwbase.node import start_background
from dwbase.node.server import RunningNode

from .conftest import Run, assert_error

Path_ = tuple[str, ...]

STORE_COMMANDS: frozenset[Path_] = frozenset(
    {
        ("remember",),
        ("ask",),
        ("replay",),
        ("inspect",),
        ("list-worlds",),
        ("observe",),
        ("world", "create"),
        ("world", "archive"),
        ("world", "resume"),
        ("world", "policy"),
        ("index", "status"),
        ("index", "rebuild"),
        ("quarantine", "list"),
        ("quarantine", "release"),
        ("quarantine", "drop"),
        ("gc",),
        ("soak",),
    }
)
"""Commands that call the DWBase API: the same on an embedded store and on a node."""

LOCAL_COMMANDS: frozenset[Path_] = frozenset(
    {
        ("storage", "check"),
        ("storage", "reindex"),
        ("storage", "compact"),
        ("storage", "encryption"),
        ("storage", "rotate-key"),
        ("erase",),
        ("backup", "create"),
        ("backup", "restore"),
        ("token", "create"),
        ("token", "list"),
        ("token", "revoke"),
    }
)
"""Commands on a data directory's files: with ``--api`` they say to give ``--data-dir``."""

NO_STORE_COMMANDS: dict[Path_, str] = {
    ("node",): "serves a store; tests/node/test_e2e.py",
    ("backup", "verify"): "reads an archive only; run in the embedded scenario",
    ("deploy", "local"): "starts node processes; tests/cli/test_deploy.py",
    ("deploy", "devnet"): "starts node processes; tests/cli/test_deploy.py",
    ("deploy", "status"): "reads deploy state; tests/cli/test_deploy.py",
    ("deploy", "stop"): "stops node processes; tests/cli/test_deploy.py",
    ("deploy", "clean"): "stops node processes; tests/cli/test_deploy.py",
    ("mcp",): "a stdio server for an MCP client; tests/integrations/test_mcp_stdio.py runs it "
    "on an embedded store and on a node",
    ("component", "build"): "builds the WASI component; tests/component builds it once a session",
    ("pack", "build"): "zips a pack; tests/component/test_pack.py",
    ("pack", "run"): "runs a pack's flow in its component; tests/component/test_pack.py",
    ("bench",): "times a temporary store of its own; tests/cli/test_perf.py",
    ("swarm", "status"): "asks a node's GET /swarm or reads a data dir's swarm.json, not the "
    "store; tests/cli/test_deploy.py runs both",
}
"""Commands that use no store at all (``--data-dir`` and ``--api`` do not apply)."""


def _leaves(cmd: Any, path: Path_ = ()) -> set[Path_]:
    subs = getattr(cmd, "commands", None)
    if not subs:
        return {path}
    out: set[Path_] = set()
    for name, sub in subs.items():
        out |= _leaves(sub, (*path, name))
    return out


def test_every_command_is_classified() -> None:
    leaves = _leaves(command())
    assert ("gc",) in leaves and ("world", "policy") in leaves
    tables = [STORE_COMMANDS, LOCAL_COMMANDS, set(NO_STORE_COMMANDS)]
    assert sum(len(t) for t in tables) == len(set().union(*tables)), "a command is in two tables"
    assert set().union(*tables) == leaves


class Walk:
    """Runs commands on one backend and records which ones ran."""

    def __init__(self, cli: Run, backend: list[str]) -> None:
        self.cli = cli
        self.backend = backend
        self.ran: set[Path_] = set()

    def run(self, path: Path_, *args: str, exit_code: int = 0) -> Result:
        result = self.cli(*self.backend, *path, *args)
        assert result.exit_code == exit_code, (path, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        self.ran.add(path)
        return result

    def json(self, path: Path_, *args: str, exit_code: int = 0) -> Any:
        return json.loads(self.run(path, *args, "--json", exit_code=exit_code).stdout)


def atoms(w: Walk) -> None:
    first = w.json(("remember",), "-w", "demo", "--text", "checkout latency 820ms")["id"]
    second = w.json(
        ("remember",), "-w", "demo", "--kind", "plan", "--text", "add a cache", "--link", first
    )["id"]
    answer = w.json(("ask",), "-w", "demo", "why is checkout slow?")
    assert answer["hits"][0]["atom"]["id"] == first
    assert [a["id"] for a in w.json(("replay",), "-w", "demo")] == [first, second]
    assert w.json(("inspect",), second)["links"] == [{"target": first, "kind": "references"}]
    assert w.json(("list-worlds",)) == ["demo"]
    lines = w.run(("observe",), "-w", "demo", "--after", first, "--count", "1", "--json")
    assert [json.loads(line)["id"] for line in lines.stdout.splitlines()] == [second]


def worlds(w: Walk) -> None:
    made = w.json(("world", "create"), "incident:42", "--description", "outage")
    assert made["status"] == "active"
    assert w.json(("world", "archive"), "incident:42")["status"] == "archived"
    assert w.json(("list-worlds",)) == []
    assert w.json(("world", "resume"), "incident:42")["status"] == "active"
    assert w.json(("list-worlds",)) == ["incident:42"]
    assert w.json(("world", "policy"), "incident:42", "--retention-days", "30")["world"] == (
        "incident:42"
    )


def indexes(w: Walk) -> None:
    w.json(("remember",), "-w", "demo", "--text", "vectors please")
    assert [s["world"] for s in w.json(("index", "status"), "--world", "demo")] == ["demo"]
    assert w.json(("index", "rebuild"), "--world", "demo") == {"worlds": ["demo"], "vectors": 1}


def quarantine(w: Walk) -> None:
    held = w.json(("remember",), "-w", "ml", "--payload", '{"loss": NaN}', exit_code=3)["id"]
    other = w.json(("remember",), "-w", "ml", "--payload", '{"loss": Infinity}', exit_code=3)
    listed = w.json(("quarantine", "list"), "--world", "ml")
    assert [a["id"] for a in listed] == [held, other["id"]]
    assert w.json(("quarantine", "release"), held)["world"] == "ml"
    assert w.json(("quarantine", "drop"), other["id"])["dropped"] is True
    assert [a["id"] for a in w.json(("replay",), "-w", "ml")] == [held]


def gc(w: Walk) -> None:
    old = w.json(
        ("remember",), "-w", "demo", "--text", "old", "--timestamp", "2020-01-01T00:00:00Z"
    )
    fresh = w.json(("remember",), "-w", "demo", "--text", "fresh")
    w.json(("world", "policy"), "demo", "--retention-days", "30")
    report = w.json(("gc",))
    assert report["evicted"] == 1 and report["by_world"] == {"demo": 1}
    assert [a["id"] for a in w.json(("replay",), "-w", "demo")] == [fresh["id"]]
    assert old["id"] != fresh["id"]


def soak(w: Walk) -> None:
    report = w.json(("soak",), "--duration", "2s", "--interval", "0.4")
    assert report["ok"] is True and report["first_error"] is None
    assert report["totals"]["remember"] > 0 and report["totals"]["ask"] > 0
    wal = [s["wal_bytes"] for s in report["samples"]]
    assert all(isinstance(b, int) for b in wal)  # the store's WAL, through health()


SCENARIOS: dict[str, tuple[Callable[[Walk], None], frozenset[Path_]]] = {
    "atoms": (
        atoms,
        frozenset(
            {("remember",), ("ask",), ("replay",), ("inspect",), ("list-worlds",), ("observe",)}
        ),
    ),
    "worlds": (
        worlds,
        frozenset(
            {
                ("world", "create"),
                ("world", "archive"),
                ("world", "resume"),
                ("world", "policy"),
                ("list-worlds",),
            }
        ),
    ),
    "indexes": (indexes, frozenset({("remember",), ("index", "status"), ("index", "rebuild")})),
    "quarantine": (
        quarantine,
        frozenset(
            {
                ("remember",),
                ("quarantine", "list"),
                ("quarantine", "release"),
                ("quarantine", "drop"),
                ("replay",),
            }
        ),
    ),
    "gc": (gc, frozenset({("remember",), ("world", "policy"), ("gc",), ("replay",)})),
    "soak": (soak, frozenset({("soak",)})),
}
"""Scenarios whose answers hold on either backend, and the commands each one runs."""


def test_the_scenarios_run_every_store_command() -> None:
    assert set().union(*(covers for _, covers in SCENARIOS.values())) == STORE_COMMANDS


def _settings(data: Path) -> Settings:
    """A node on 127.0.0.1, a free port, no tokens (loopback is open), its own data dir."""
    overrides = {"data_dir": str(data), "listen": "127.0.0.1:0", "access_log": False}
    return load_settings(None, overrides, environ={})


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    with start_background(_settings(tmp_path / "node")) as running:
        yield running


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_store_commands_run_on_an_embedded_store(cli: Run, tmp_path: Path, name: str) -> None:
    scenario, covers = SCENARIOS[name]
    w = Walk(cli, ["--data-dir", str(tmp_path / "store")])
    scenario(w)
    assert w.ran == covers


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_store_commands_run_on_a_node(cli: Run, node: RunningNode, name: str) -> None:
    scenario, covers = SCENARIOS[name]
    w = Walk(cli, ["--api", node.url])
    scenario(w)
    assert w.ran == covers


def test_local_commands_run_on_an_embedded_store(cli: Run, tmp_path: Path) -> None:
    w = Walk(cli, ["--data-dir", str(tmp_path / "store")])
    w.json(("remember",), "-w", "demo", "--text", "one atom")
    assert w.json(("storage", "check"))["ok"] is True
    assert w.json(("storage", "reindex"))["reindexed"] == 1
    assert w.json(("storage", "compact"))["used_bytes_after"] > 0
    assert w.json(("storage", "encryption")) == {"cipher": None}
    # A plain store: rotate-key and erase say it is not encrypted (tests/security run them).
    assert "not encrypted" in w.run(("storage", "rotate-key"), "--to", "k2", exit_code=2).stderr
    assert "not encrypted" in w.run(("erase",), "--subject", "u-1", exit_code=2).stderr
    made = w.json(("token", "create"), "agent-1", "--read", "demo")
    assert [t["id"] for t in w.json(("token", "list"))] == [made["id"]]
    assert w.json(("token", "revoke"), made["id"])["revoked_at"] is not None
    archive = tmp_path / "store.tar.zst"
    w.json(("backup", "create"), str(archive))
    w.run(("backup", "verify"), str(archive))
    restored = Walk(cli, ["--data-dir", str(tmp_path / "restored")])
    assert restored.json(("backup", "restore"), str(archive))["check"]["records"] == 1
    assert w.ran | restored.ran == LOCAL_COMMANDS | {("remember",), ("backup", "verify")}


def test_local_commands_on_a_node_say_to_give_a_data_dir(
    cli: Run, node: RunningNode, tmp_path: Path
) -> None:
    arguments: dict[Path_, list[str]] = {
        ("token", "create"): ["agent-1"],
        ("token", "revoke"): ["3f9a1c2b7d4e"],
        ("backup", "create"): [str(tmp_path / "b.tar.zst")],
        ("backup", "restore"): [str(tmp_path / "b.tar.zst")],
        ("storage", "rotate-key"): ["--to", "k2"],
        ("erase",): ["--subject", "u-1"],
    }
    for path in sorted(LOCAL_COMMANDS):
        result = cli("--api", node.url, *path, *arguments.get(path, []))
        assert_error(result, "invalid_input", 2, "--data-dir")


def test_gc_on_a_node_that_cannot_be_reached_is_unavailable(cli: Run) -> None:
    assert_error(cli("--api", "http://127.0.0.1:9", "gc"), "unavailable", 1)

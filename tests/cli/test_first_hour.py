"""What a new user meets first: --version, global options anywhere, a 401 that says what to do,
and a node whose port is taken saying so and how to pick another."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import dwbase
from dwbase.config import load_settings
from dwbase.errors import ConflictError
from dwbase.node import start_background
from dwbase.security.tokens import TokenStore

from .conftest import Run, assert_error, ok_json, remember


def test_version_prints_the_package_version(cli: Run) -> None:
    result = cli("--version")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"dwbase {dwbase.__version__}"


def test_global_options_are_accepted_after_the_command(cli: Run, data_dir: Path) -> None:
    aid = ok_json(
        cli("remember", "--world", "demo", "--text", "x", "--data-dir", str(data_dir), "--json")
    )["id"]
    atoms = ok_json(cli("replay", f"--data-dir={data_dir}", "--world", "demo", "--json"))
    assert [a["id"] for a in atoms] == [aid]
    # a nested command too, and the option before the command still works
    worlds = ok_json(cli("--data-dir", str(data_dir), "list-worlds", "--json"))
    assert "demo" in str(worlds)
    policy = ok_json(
        cli(
            "world",
            "policy",
            "demo",
            "--retention-days",
            "30",
            "--data-dir",
            str(data_dir),
            "--json",
        )
    )
    assert policy


def test_an_option_value_that_looks_like_a_global_option_is_left_alone(
    dw: Run, data_dir: Path
) -> None:
    aid = remember(dw, "--world", "demo", "--text", "--api")
    atom = ok_json(dw("inspect", aid, "--json"))
    assert json.loads(atom["payload_json"]) == {"text": "--api"}


def test_unauthenticated_cli_call_names_token_and_dwbase_token(cli: Run, tmp_path: Path) -> None:
    settings = load_settings(None, {"listen": "127.0.0.1:0", "data_dir": str(tmp_path / "node")})
    TokenStore(settings.tokens_path).create("agent-1", read=["*"], write=["*"])
    with start_background(settings) as node:
        result = cli("--api", node.url, "list-worlds")
    assert_error(result, "unauthenticated", 1, "--token", "DWBASE_TOKEN")


def test_a_node_on_a_port_in_use_says_so_and_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        settings = load_settings(
            None, {"listen": f"127.0.0.1:{port}", "data_dir": str(tmp_path / "d")}, environ={}
        )
        with pytest.raises(ConflictError, match=f"127.0.0.1:{port} is already in use") as info:
            start_background(settings)
        assert "--listen" in str(info.value) and "DWBASE_LISTEN" in str(info.value)
        # the command line says the same, as an error and not a traceback
        env = {k: v for k, v in os.environ.items() if not k.startswith("DWBASE_")}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dwbase",
                "--data-dir",
                str(tmp_path / "d"),
                "node",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1, proc.stderr
    assert "error[conflict]" in proc.stderr and "already in use" in proc.stderr
    assert "Traceback" not in proc.stderr

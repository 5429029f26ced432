"""The first minute with a node: ``GET /`` says what it is, and ``dwbase node`` on a terminal
says where it listens, where the data is, who may call it and how to stop it."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

import dwbase
from dwbase.config import Settings
from dwbase.node.server import banner, show_banner
from dwbase.security.tokens import TokenStore

from .conftest import assert_error, make_settings

ROOT = Path(__file__).resolve().parents[2]


def test_root_answers_a_small_json_index_with_links_that_work(http: TestClient) -> None:
    resp = http.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["name"] == "dwbase" and body["version"] == dwbase.__version__
    assert body["auth"] == "none"
    links = body["links"]
    assert links["docs"] is None  # the node serves no interactive docs
    for name in ("openapi", "health", "healthz", "metrics"):
        assert http.get(links[name]).status_code == 200, name
    assert http.get(links["openapi"]).json()["info"]["version"] == dwbase.__version__
    assert (ROOT / body["documentation"]).is_file()


def test_root_needs_no_token_and_says_that_the_others_do(
    make_http: Callable[..., TestClient], tokens: TokenStore
) -> None:
    tokens.create("agent", read=["*"])
    anonymous = make_http()
    index = anonymous.get("/")
    assert index.status_code == 200
    assert index.json()["auth"] == "token"
    assert_error(anonymous.get(index.json()["links"]["health"]), 401, "unauthenticated")


def test_the_banner_shows_only_on_a_terminal(settings: Settings) -> None:
    text = banner("http://127.0.0.1:8080", settings, auth=False)
    piped = io.StringIO()
    assert show_banner(text, piped) is False  # StringIO is no terminal
    assert piped.getvalue() == ""
    terminal = io.StringIO()
    assert show_banner(text, terminal, tty=True) is True
    shown = terminal.getvalue()
    assert "http://127.0.0.1:8080" in shown
    assert str(Path(settings.data_dir).resolve()) in shown
    assert "auth   none" in shown and "Ctrl+C" in shown and "docs/node.md" in shown


def test_the_banner_names_the_auth_mode_and_a_store_in_memory(tmp_path: Path) -> None:
    tokens = banner("http://127.0.0.1:1", make_settings(tmp_path), auth=True)
    assert "Authorization: Bearer" in tokens
    open_ = banner(
        "http://0.0.0.0:1",
        make_settings(tmp_path, listen="0.0.0.0:1", insecure=True, **{"storage.backend": "memory"}),
        auth=False,
    )
    assert "--insecure" in open_ and "in memory" in open_


def test_dwbase_node_prints_the_banner_on_a_terminal(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    env = {**os.environ, "DWBASE_ACCESS_LOG": "off"}
    env.pop("DWBASE_TOKEN", None)
    command = ["dwbase", "--data-dir", str(tmp_path / "data"), "node", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 30  # leaves as soon as the banner is there
        while b"Ctrl+C" not in seen and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.1)[0]:
                try:
                    seen += os.read(controller, 4096)
                except OSError:  # the node exited and closed the terminal
                    break
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(controller)
    text = seen.decode(errors="replace")
    assert f"DWBase node {dwbase.__version__} listening on http://127.0.0.1:" in text, text
    assert str((tmp_path / "data").resolve()) in text
    assert "Ctrl+C" in text

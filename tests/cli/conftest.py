"""Helpers for CLI tests: run the real ``dwbase`` command against a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from dwbase.cli import app

Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DWBASE_DATA_DIR", "DWBASE_API", "DWBASE_TOKEN", "DWBASE_WORKER"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def cli() -> Run:
    """``cli(*args)`` runs ``dwbase ARGS`` in-process and returns the click Result."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env=env, prog_name="dwbase")

    return run


@pytest.fixture
def dw(cli: Run, data_dir: Path) -> Run:
    """``dw(*args)`` runs ``dwbase --data-dir <store> ARGS``."""

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return cli("--data-dir", str(data_dir), *args, env=env)

    return run


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def remember(dw: Run, *args: str) -> str:
    data = ok_json(dw("remember", *args, "--json"))
    return str(data["id"])


def assert_error(result: Result, code: str, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
    assert f"error[{code}]:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def ids(atoms: Sequence[dict[str, Any]]) -> list[str]:
    return [a["id"] for a in atoms]

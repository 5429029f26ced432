"""scripts/test.sh: tests on several workers, a timeout on each, real counts, no tests = failure."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COUNTS = ROOT / "scripts" / "test_counts.py"


def test_every_test_has_a_timeout(pytestconfig: pytest.Config) -> None:
    assert float(pytestconfig.getini("timeout")) == 300
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {req.split(">")[0].split("=")[0].strip() for req in dev["dev"]}
    assert {"pytest-xdist", "pytest-timeout"} <= names


def test_the_script_runs_pytest_on_workers_and_prints_what_it_installs() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert '-n "$WORKERS"' in script
    assert "du -sh .venv" in script and "installing dwbase" in script


def _pytest(where: Path, *args: str) -> int:
    (where / "pytest.ini").write_text("[pytest]\n")
    # Only the xdist plugin: loading every installed plugin would take seconds per process.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "xdist",
            "-p",
            "no:cacheprovider",
            "-q",
            "-n",
            "2",
            "--rootdir",
            str(where),
            "-c",
            str(where / "pytest.ini"),
            *args,
        ],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).returncode


def _counts(junit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COUNTS), str(junit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_counts_from_workers_are_the_real_ones(tmp_path: Path) -> None:
    (tmp_path / "test_few.py").write_text(
        "import pytest\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "def test_c(): assert False\n"
        "@pytest.mark.skip(reason='x')\n"
        "def test_d(): pass\n"
    )
    junit = tmp_path / "junit.xml"
    assert _pytest(tmp_path, f"--junitxml={junit}", "test_few.py") == 1
    counts = _counts(junit)
    assert counts.returncode == 0
    assert counts.stdout.strip() == "tests: 4 collected, 2 passed, 1 failed, 0 errors, 1 skipped"


def test_no_tests_is_a_failure_with_workers_too(tmp_path: Path) -> None:
    (tmp_path / "test_none.py").write_text("x = 1\n")
    junit = tmp_path / "junit.xml"
    assert _pytest(tmp_path, f"--junitxml={junit}", "test_none.py") == 5
    assert _counts(junit).returncode == 1

"""Every ```bash, ```sh and ```python block of README.md, docs/*.md and examples/*.md runs
as written.

Each block runs in a fresh directory laid out as after the README's install: ``dwbase``,
``python`` and ``pip`` of this environment come first on ``PATH`` (as with the venv active),
``./deploy`` holds the repository's config templates, and ``./dwbase-data`` holds the store the
README's first example leaves behind (world ``demo``). Shell blocks run under ``bash -e -u -o
pipefail``: every command must succeed. Python blocks run as ``python -c BLOCK``.

A block that talks to a node on ``127.0.0.1:8080`` gets one: a real node serving
``./dwbase-data`` on a free port, which replaces ``127.0.0.1:8080`` in the block's text (two
tests must not fight over one port).

A block that cannot run here is preceded by ``<!-- not run: REASON -->`` (it is then not
collected); the reason must say why, and such blocks are few (a test counts them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("*.md")),
]
FENCE = re.compile(r"^```([A-Za-z]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->\s*\Z", re.S)
RUN_LANGS = ("bash", "sh", "python")
NODE_ADDR = "127.0.0.1:8080"
MAX_NOT_RUN = 16  # benchmark commands (minutes of load each) are most of them


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    out: list[Block] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            lang = m.group(1).lower()
            before = text[: m.start()].rstrip()
            marker = NOT_RUN.search(before[-400:])
            line = text.count("\n", 0, m.start()) + 1
            name = str(page.relative_to(ROOT))
            out.append(Block(name, line, lang, m.group(2), marker.group(1) if marker else None))
    return out


def _looks_like_commands(code: str) -> bool:
    first = code.lstrip().split(None, 1)[0] if code.strip() else ""
    return first in (
        "dwbase",
        "python",
        "python3",
        "pip",
        "curl",
        "docker",
        "kubectl",
        ".venv/bin/python",
    )


SHELL_AND_PYTHON = [b for b in blocks() if b.lang in RUN_LANGS]
# Blocks marked "not run" are not collected at all: in CI every skip counts as a failure.
RUNNABLE = [b for b in SHELL_AND_PYTHON if not b.not_run]


def test_every_block_of_commands_says_it_is_shell() -> None:
    untagged = [b.id for b in blocks() if b.lang == "" and _looks_like_commands(b.code)]
    assert untagged == [], "tag these blocks ```sh so they run (or ```text)"


def test_blocks_that_do_not_run_are_few_and_say_why() -> None:
    skipped = [b for b in SHELL_AND_PYTHON if b.not_run]
    assert len(skipped) <= MAX_NOT_RUN, [b.id for b in skipped]
    for b in skipped:
        assert b.not_run and len(b.not_run.split()) >= 3, f"{b.id}: say why it does not run"


@pytest.fixture(scope="session")
def seed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """./dwbase-data as the README's first example leaves it."""
    where = tmp_path_factory.mktemp("seed")
    readme = next(b for b in RUNNABLE if b.page == "README.md" and b.lang == "python")
    _run([sys.executable, "-c", readme.code], where, _env(), 120)
    return where / "dwbase-data"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DWBASE_")}
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = os.path.dirname(bindir)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@pytest.fixture
def workdir(tmp_path: Path, seed_store: Path) -> Path:
    shutil.copytree(seed_store, tmp_path / "dwbase-data")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    return tmp_path


@pytest.fixture
def node_for(workdir: Path) -> Iterator[Callable[[], str]]:
    from dwbase.config import load_settings
    from dwbase.node import RunningNode, start_background

    started: list[RunningNode] = []

    def start() -> str:
        settings = load_settings(
            None, {"listen": "127.0.0.1:0", "data_dir": str(workdir / "dwbase-data")}, environ={}
        )
        node = start_background(settings)
        node.start()
        started.append(node)
        return node.url.removeprefix("http://")

    yield start
    for node in started:
        node.stop()


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_doc_block_runs_as_written(
    block: Block, workdir: Path, node_for: Callable[[], str]
) -> None:
    code = block.code
    if NODE_ADDR in code:
        code = code.replace(NODE_ADDR, node_for())
    if block.lang == "python":
        _run([sys.executable, "-c", code], workdir, _env(), 120)
    else:
        _run(["bash", "-e", "-u", "-o", "pipefail", "-c", code], workdir, _env(), 120)


OUTSIDE = re.compile(r"DESIGN(\.md| §)|STYLE\.md|\.\./shared|shared/benchmarks")


def test_project_text_cites_no_document_outside_the_repository() -> None:
    files = [
        *PAGES,
        *sorted((ROOT / "src").rglob("*.py")),
        *sorted((ROOT / "benchmarks").rglob("*.py")),
    ]
    files += sorted((ROOT / "examples").rglob("*.py")) + sorted((ROOT / "scripts").glob("*"))
    cited = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in files
        if path.is_file()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert cited == []

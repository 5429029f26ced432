"""The Python examples in docs/node.md and docs/security.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def examples() -> list[tuple[str, int, str]]:
    out = []
    for name in ("node.md", "security.md"):
        for i, code in enumerate(BLOCK.findall((DOCS / name).read_text())):
            out.append((name, i, code))
    return out


@pytest.mark.parametrize(("page", "index", "code"), examples(), ids=lambda v: str(v)[:12])
def test_doc_example_runs(page: str, index: int, code: str) -> None:
    exec(compile(code, f"{page}[{index}]", "exec"), {"__name__": f"docs_{index}"})

"""Without the mcp and langchain extras, DWBase still imports, opens stores and serves its
node; ``/mcp`` and ``dwbase mcp`` say which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import importlib.abc, sys

BLOCKED = ("mcp", "mcp_types", "langgraph", "langchain_core")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())

import dwbase
from dwbase.node import create_app
from fastapi.testclient import TestClient

db = dwbase.open(sys.argv[1])
db.remember("demo", "a", text="works without extras")
with TestClient(create_app(db)) as http:
    r = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "unavailable" and "dwbase[mcp]" in err["message"], err
    assert http.post("/ask", json={"world": "demo", "text": "works"}).status_code == 200
db.close()

from dwbase.cli import main
try:
    main(["--data-dir", sys.argv[1], "mcp"])
except SystemExit as exc:
    assert exc.code == 1, exc.code
else:
    raise AssertionError("dwbase mcp ran without the mcp extra")
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
print("ok")
"""


def test_dwbase_runs_without_the_mcp_and_langchain_extras(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "mem")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
    assert "error[unavailable]" in proc.stderr and "pip install 'dwbase[mcp]'" in proc.stderr

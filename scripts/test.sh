#!/usr/bin/env bash
# Install everything DWBase's tests need into ./.venv and run the whole suite.
#
#   ./scripts/test.sh                # all tests
#   ./scripts/test.sh tests/cli      # extra arguments go to pytest
#
# Set DWBASE_REQUIRE_EXTERNAL=1 (CI does) to turn "skipped: needs <external part>" into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch is pinned inside the `embed` extra so no CUDA build is pulled.
.venv/bin/python -m pip install -q -e ".[dev,embed,ann]" 2>&1 | grep -v -E "^WARNING: Location" || true
.venv/bin/python -c "import dwbase" >/dev/null

echo "== ruff"
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/ruff check src tests benchmarks
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
mkdir -p .test-results
set +e
.venv/bin/python -m pytest -p no:cacheprovider --junitxml=.test-results/junit.xml "$@"
rc=$?
set -e
.venv/bin/python scripts/test_counts.py .test-results/junit.xml
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
fi
exit "$rc"

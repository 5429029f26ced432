#!/usr/bin/env bash
# Build every release artifact into one directory (default dist/release):
#   dwbase-<version>-py3-none-any.whl and dwbase-<version>.tar.gz  (python -m build, offline)
#   dwbase-core.wasm + component.manifest.json                     (dwbase component build)
#   dwbase-memory.gtpack                                           (dwbase pack build)
#   requirements-node.lock.txt   the node's dependencies pinned to the versions tested here
#   SHA256SUMS                   sha256sum -c SHA256SUMS checks all of the above
# Usage: ./scripts/release.sh [OUT_DIR]
# DWBASE_RELEASE_WASM=FILE takes an already built component instead of building it (a build
# takes a minute or more). Needs the dev and component extras (./scripts/test.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-dist/release}
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== wheel and sdist"
"$PY" -m build --no-isolation --outdir "$OUT" . >"$OUT/.build.log" 2>&1 || {
  cat "$OUT/.build.log"
  exit 1
}
rm -f "$OUT/.build.log"

echo "== component"
if [[ -n "${DWBASE_RELEASE_WASM:-}" ]]; then
  cp "$DWBASE_RELEASE_WASM" "$OUT/dwbase-core.wasm"
  cp "$(dirname "$DWBASE_RELEASE_WASM")/component.manifest.json" "$OUT/component.manifest.json"
else
  "$PY" -m dwbase component build --out "$OUT/dwbase-core.wasm"
fi

echo "== pack"
"$PY" -m dwbase pack build --component "$OUT/dwbase-core.wasm" --out "$OUT/dwbase-memory.gtpack"

echo "== locked requirements"
"$PY" scripts/lock_requirements.py >"$OUT/requirements-node.lock.txt"

echo "== checksums"
(cd "$OUT" && sha256sum -- * >SHA256SUMS && cat SHA256SUMS)
echo "release artifacts in $OUT"

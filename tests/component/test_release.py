"""Release artifacts: the wheel installs in a fresh venv and ``dwbase node`` starts from it;
``scripts/release.sh`` writes every artifact with checksums that verify.

The fresh venv gets the wheel with ``--no-deps``; its third-party dependencies come from this
environment's site-packages through a ``.pth`` line (the tests run offline, so nothing is
downloaded). That line adds the directory only: the editable install of the checkout (a
``.pth`` inside it) is not processed, and the test checks ``dwbase`` is imported from the
wheel, not from ``src/``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return next(out.glob("dwbase-*.whl"))


def test_the_wheel_installs_in_a_fresh_venv_and_the_node_starts(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dwbase/component/wit/dwbase-core.wit" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "deps-from-test-env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    where = subprocess.run(
        [str(py), "-c", "import dwbase; print(dwbase.__file__, dwbase.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(site)), where
    version = subprocess.run(
        [str(venv / "bin" / "dwbase"), "--version"], check=True, capture_output=True, text=True
    ).stdout
    assert "0.1.0" in version

    port = _free_port()
    node = subprocess.Popen(
        [
            str(venv / "bin" / "dwbase"),
            "--data-dir",
            str(tmp_path / "data"),
            "node",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert node.poll() is None, node.stdout.read() if node.stdout else b""
                assert time.monotonic() < deadline, "the node never answered /healthz"
                time.sleep(0.1)
        body = json.dumps(
            {
                "world": "demo",
                "worker": "w",
                "kind": "observation",
                "timestamp": "",
                "importance": 0.5,
                "payload_json": '{"text": "from the wheel"}',
            }
        ).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/remember",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert len(json.loads(r.read())) == 36
    finally:
        node.terminate()
        node.wait(timeout=10)
        if node.stdout:
            node.stdout.close()


@pytest.mark.component
def test_release_script_writes_every_artifact_with_checksums(
    component_wasm: Path, tmp_path: Path
) -> None:
    out = tmp_path / "release"
    proc = subprocess.run(
        [str(ROOT / "scripts" / "release.sh"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={
            **os.environ,
            "DWBASE_RELEASE_WASM": str(component_wasm),
            "PYTHON": sys.executable,
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "SHA256SUMS",
            "component.manifest.json",
            "dwbase-0.1.0-py3-none-any.whl",
            "dwbase-0.1.0.tar.gz",
            "dwbase-core.wasm",
            "dwbase-memory.gtpack",
            "requirements-node.lock.txt",
        ]
    )
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    lock = (out / "requirements-node.lock.txt").read_text().splitlines()
    pins = [ln for ln in lock if not ln.startswith("#")]
    assert any(ln.startswith("fastapi==") for ln in pins) and all("==" in ln for ln in pins)
    with tarfile.open(out / "dwbase-0.1.0.tar.gz") as tf:
        sdist = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"LICENSE", "wit/dwbase-core.wit", "packs/dwbase-memory/pack.json"} <= sdist

"""Schemathesis fuzzes every operation of /openapi.json: no 5xx, every response as documented.

``DWBASE_FUZZ_EXAMPLES`` sets the examples per operation (default 60; CI sets enough for at
least ``DWBASE_FUZZ_MIN`` requests, default 1000, which the last test checks).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dwbase.node import create_app

from .conftest import make_settings

EXAMPLES = int(os.environ.get("DWBASE_FUZZ_EXAMPLES", "60"))
MINIMUM = int(os.environ.get("DWBASE_FUZZ_MIN", "1000"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
SENT: list[int] = []


_TMP = Path(tempfile.mkdtemp(prefix="dwbase-fuzz-"))
_SETTINGS = make_settings(_TMP)
_ENGINE = _SETTINGS.open_engine()
_ENGINE.remember("demo", "seed", "observation", {"text": "seed atom"})
_ENGINE.remember("demo", "seed", payload_json='{"text": "held", "v": NaN}')  # one in quarantine
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_ENGINE, _SETTINGS))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _ENGINE.close()
    shutil.rmtree(_TMP, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case: Any) -> None:
    if case.path == "/observe/stream":
        # An SSE stream runs until the client leaves; end it at once when idle.
        case.query = {**(case.query or {}), "timeout_s": 0.01, "max_events": 5}
    SENT.append(1)
    case.call_and_validate(checks=CHECKS)


def test_fuzz_sent_enough_requests() -> None:
    if not SENT:
        pytest.skip("run together with test_api_conforms_to_its_openapi_document")
    if EXAMPLES < 60 and "CI" not in os.environ:
        pytest.skip(f"short local run: {len(SENT)} requests")
    assert len(SENT) >= MINIMUM, f"only {len(SENT)} generated requests"

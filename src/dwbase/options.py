"""Engine options: one table of defaults (also read by the CLI and the docs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .embed import Embedder, get_embedder
from .model import DEFAULT_MAX_PAYLOAD_BYTES
from .quarantine import QuarantineConfig
from .ranking import RankingWeights
from .security.keys import KeyProvider
from .timeutil import Clock, system_clock


@dataclass(slots=True)
class Options:
    """Keyword options of :func:`dwbase.open`.

    >>> Options().durability
    'normal'
    """

    # None: the embedder the store records (hashing for a new store). One that differs from
    # the store's is refused unless ``reembed=True`` re-embeds every atom on purpose.
    embedder: Embedder | None = None
    reembed: bool = False
    clock: Clock = system_clock
    durability: str = "normal"
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    ranking: RankingWeights = field(default_factory=RankingWeights)
    quarantine: QuarantineConfig = field(default_factory=QuarantineConfig)
    trust: dict[str, float] = field(default_factory=dict)
    default_trust: float = 0.5
    observe_capacity: int = 10_000
    observe_idle_ttl_s: float = 600.0
    gc_interval_s: float | None = None
    max_disk_mb: float | None = None
    summary_hits: int = 3
    # Worlds with at least this many vectors get an HNSW graph (``ann`` extra); None: never.
    ann_threshold: int | None = 20_000
    # False: this process builds no graph (a short CLI command would throw it away); a graph
    # saved beside the store is still loaded and used (docs/performance.md, "Reopen").
    ann_build: bool = True
    # Encryption at rest (docs/security.md): a key id creates an encrypted store, and an
    # existing store must be encrypted under it. An encrypted store opens with its keys from
    # ``key_provider`` (default: DWBASE_KEY_<ID> variables, DWBASE_KEY_DIR files) either way.
    encryption_key: str | None = None
    key_provider: KeyProvider | None = None

    def __post_init__(self) -> None:
        # ``embedder="minilm"`` (a name, as in config files) is resolved here.
        value: object = self.embedder
        if isinstance(value, str):
            self.embedder = get_embedder(value)

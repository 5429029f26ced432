"""Node settings: one table drives the defaults, the ``DWBASE_*`` variables and the docs.

A config file is TOML with a ``[node]`` table::

    [node]
    listen = "127.0.0.1:8080"
    data_dir = "./dwbase-data"

    [node.health]
    disk_warn_pct = 75

Every setting is also read from the environment: ``node.health.disk_warn_pct`` is
``DWBASE_HEALTH_DISK_WARN_PCT``, ``node.listen`` is ``DWBASE_LISTEN``. Precedence, lowest
first: defaults, the file, the environment, explicit overrides (command-line flags). An
unknown key in the file is an error that names it.

>>> s = load_settings(None, {"listen": "127.0.0.1:9000"}, environ={})
>>> (s.host, s.port, s.data_dir)
('127.0.0.1', 9000, './dwbase-data')
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .config_compat import translate_original
from .errors import InvalidInputError
from .ranking import RankingWeights

if TYPE_CHECKING:
    from .engine import Engine
    from .options import Options

_RW = RankingWeights()
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _s(key: str, default: Any, help: str, kind: str | None = None) -> Any:
    """One row of the settings table: TOML key under ``[node]``, default and help text."""
    meta = {"key": key, "help": help, "kind": kind}
    if isinstance(default, list | dict):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every node setting. Field ``security_max_payload_bytes`` is ``[node.security]``
    ``max_payload_bytes`` in TOML and ``DWBASE_SECURITY_MAX_PAYLOAD_BYTES`` in the environment.
    """

    listen: str = _s("listen", "127.0.0.1:8080", "address and port the node listens on")
    data_dir: str = _s("data_dir", "./dwbase-data", "directory holding the store")
    embedder: str = _s("embedder", "hashing", "embedder name (hashing needs no model)")
    reembed: bool = _s(
        "reembed",
        False,
        "re-embed every stored atom when the store records another embedder (else refused)",
    )
    insecure: bool = _s(
        "insecure", False, "allow a non-loopback address with no tokens (no authentication)"
    )
    log_level: str = _s("log_level", "info", "debug, info, warning or error")
    access_log: bool = _s("access_log", True, "log one JSON line per request")
    max_body_bytes: int = _s(
        "max_body_bytes", 16 * 1024 * 1024, "largest request body accepted (413 above)"
    )
    read_threads: int = _s(
        "read_threads", 1, "threads answering ask and inspect (1 is fastest on 2 cores)"
    )
    ask_workers: int = _s(
        "ask_workers", 0, "processes answering asks over the same store (0 = in the node)"
    )

    limits_max_connections: int = _s(
        "limits.max_connections", 1000, "open HTTP connections; one more is answered 503, closed"
    )
    limits_keep_alive_s: int = _s(
        "limits.keep_alive_s", 5, "close a kept-alive connection idle this many seconds"
    )
    limits_header_timeout_s: float = _s(
        "limits.header_timeout_s", 10.0, "a request's head must arrive within this (408, closed)"
    )
    limits_body_timeout_s: float = _s(
        "limits.body_timeout_s", 30.0, "a request's body must follow its head within this (408)"
    )
    limits_observe_per_token: int = _s(
        "limits.observe_per_token", 32, "observe handles and SSE streams of one token (429 above)"
    )
    limits_observe_total: int = _s(
        "limits.observe_total", 512, "observe handles and SSE streams of all tokens (429 above)"
    )
    limits_observe_queue_per_token: int = _s(
        "limits.observe_queue_per_token",
        320_000,
        "atoms one token's observe queues may hold, their capacities summed (429 above)",
    )
    limits_observe_queue_total: int = _s(
        "limits.observe_queue_total",
        1_000_000,
        "atoms all observe queues may hold, their capacities summed (429 above)",
    )

    security_max_payload_bytes: int = _s(
        "security.max_payload_bytes", 256 * 1024, "largest payload_json of one atom (413 above)"
    )
    security_quarantine: bool = _s(
        "security.quarantine", True, "hold suspicious writes in quarantine:<world>"
    )
    security_burst_count: int = _s(
        "security.burst_count", 50, "atoms one worker may write to a world per burst window"
    )
    security_burst_window_s: float = _s("security.burst_window_s", 1.0, "burst window in seconds")
    security_low_trust: float = _s(
        "security.low_trust", 0.2, "writers below this trust are held above low_trust_importance"
    )
    security_low_trust_importance: float = _s(
        "security.low_trust_importance", 0.8, "importance above which low-trust writes are held"
    )
    security_default_trust: float = _s(
        "security.default_trust", 0.5, "trust of a worker not listed in security.trust"
    )
    security_trust: dict[str, float] = _s(  # noqa: RUF009 (a dataclass field, not a call)
        "security.trust", {}, "per-worker trust, e.g. {agent-1 = 0.9} (env: agent-1=0.9,b=0.1)"
    )

    auth_required: bool = _s(
        "auth.required", False, "demand a bearer token even before any token exists"
    )
    auth_tokens_file: str = _s(
        "auth.tokens_file", "", "token file (default <data_dir>/tokens.json)"
    )
    auth_remember_rate: float = _s(
        "auth.remember_rate", 0.0, "default remember atoms/s per token (0 = unlimited)"
    )
    auth_ask_rate: float = _s("auth.ask_rate", 0.0, "default asks/s per token (0 = unlimited)")

    health_disk_warn_pct: float = _s("health.disk_warn_pct", 80.0, "disk pressure 'warn' at")
    health_disk_degraded_pct: float = _s(
        "health.disk_degraded_pct", 90.0, "disk pressure 'degraded' at (health degraded)"
    )
    health_min_free_mb: float = _s(
        "health.min_free_mb", 16.0, "free disk below this: storage_ok false, /readyz 503"
    )

    storage_backend: str = _s("storage.backend", "sqlite", "sqlite or memory")
    storage_durability: str = _s(
        "storage.durability", "normal", "normal (WAL, fsync at checkpoints) or full"
    )
    storage_max_disk_mb: float = _s(
        "storage.max_disk_mb", 0.0, "disk budget for gc in MiB (0 = none)"
    )
    storage_gc_interval_s: float = _s(
        "storage.gc_interval_s", 0.0, "run gc every N seconds (0 = only on demand)"
    )
    storage_observe_capacity: int = _s(
        "storage.observe_capacity", 10_000, "queue size of one observe subscription"
    )
    storage_observe_idle_ttl_s: float = _s(
        "storage.observe_idle_ttl_s", 600.0, "drop observe subscriptions idle this long"
    )
    storage_encryption_key: str = _s(
        "storage.encryption_key",
        "",
        "key id: a new store is encrypted under it, an existing one must be (docs/security.md)",
    )
    storage_key_dir: str = _s(
        "storage.key_dir", "", "directory of <id>.key files, tried after DWBASE_KEY_<ID>"
    )

    swarm_enabled: bool = _s(
        "swarm.enabled", False, "replicate worlds with other nodes over NATS (docs/swarm.md)"
    )
    swarm_nats_url: str = _s(
        "swarm.nats_url", "nats://127.0.0.1:4222", "NATS server(s), comma-separated"
    )
    swarm_want: list[str] = _s(  # noqa: RUF009
        "swarm.want", ["*"], "world patterns this node receives"
    )
    swarm_share: list[str] = _s(  # noqa: RUF009
        "swarm.share", ["*"], "world patterns this node sends"
    )
    swarm_deny: list[str] = _s(  # noqa: RUF009
        "swarm.deny", [], "world patterns never sent nor received"
    )
    swarm_peers: list[str] = _s(  # noqa: RUF009
        "swarm.peers", [], "trusted peers' public keys (base64); others are ignored"
    )
    swarm_peers_file: str = _s(
        "swarm.peers_file", "", 'JSON {"peers": [{"key", "name", "write", "read"}]}'
    )
    swarm_endpoint: str = _s("swarm.endpoint", "", "HTTP address announced to peers")
    swarm_stream: str = _s("swarm.stream", "DWBASE_WORLDS", "JetStream stream of world events")
    swarm_stream_max_age_s: float = _s(
        "swarm.stream_max_age_s", 7 * 86400.0, "JetStream keeps events this long"
    )
    swarm_hello_interval_s: float = _s(
        "swarm.hello_interval_s", 5.0, "presence on dwbase.node.hello every N seconds"
    )
    swarm_antientropy_interval_s: float = _s(
        "swarm.antientropy_interval_s", 60.0, "compare worlds with peers every N s (0 = off)"
    )

    # Defaults come from RankingWeights: the node ranks exactly like the library.
    ranking_lexical: float = _s("ranking.lexical", _RW.lexical, "weight of lexical relevance")
    ranking_semantic: float = _s("ranking.semantic", _RW.semantic, "weight of semantic relevance")
    ranking_context_prev: float = _s(
        "ranking.context_prev", _RW.context_prev, "share of the previous atom's relevance"
    )
    ranking_context_next: float = _s(
        "ranking.context_next", _RW.context_next, "share of the next atom's relevance"
    )
    ranking_context_gap_hours: float = _s(
        "ranking.context_gap_hours", _RW.context_gap_hours, "neighbours further apart do not count"
    )
    ranking_recency: float = _s("ranking.recency", _RW.recency, "weight of recency")
    ranking_importance: float = _s("ranking.importance", _RW.importance, "weight of importance")
    ranking_trust: float = _s("ranking.trust", _RW.trust, "weight of writer trust")
    ranking_recency_half_life_hours: float = _s(
        "ranking.recency_half_life_hours", _RW.recency_half_life_hours, "recency half-life in hours"
    )
    ranking_recency_window: int = _s(
        "ranking.recency_window", _RW.recency_window, "newest atoms always considered by ask"
    )
    ranking_candidates: int = _s(
        "ranking.candidates", _RW.candidates, "candidates per path (lexical, semantic) per ask"
    )

    # ------------------------------------------------------------------ derived values

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def tokens_path(self) -> str:
        return self.auth_tokens_file or os.path.join(self.data_dir, "tokens.json")

    def engine_options(self, **extra: Any) -> Options:
        from .embed import get_embedder
        from .options import Options
        from .quarantine import QuarantineConfig
        from .security.keys import default_key_provider

        ranking = RankingWeights(
            lexical=self.ranking_lexical,
            semantic=self.ranking_semantic,
            context_prev=self.ranking_context_prev,
            context_next=self.ranking_context_next,
            context_gap_hours=self.ranking_context_gap_hours,
            recency=self.ranking_recency,
            importance=self.ranking_importance,
            trust=self.ranking_trust,
            recency_half_life_hours=self.ranking_recency_half_life_hours,
            recency_window=self.ranking_recency_window,
            candidates=self.ranking_candidates,
        )
        quarantine = QuarantineConfig(
            enabled=self.security_quarantine,
            burst_count=self.security_burst_count,
            burst_window_s=self.security_burst_window_s,
            low_trust=self.security_low_trust,
            low_trust_importance=self.security_low_trust_importance,
        )
        opts: dict[str, Any] = {
            "embedder": get_embedder(self.embedder),
            "reembed": self.reembed,
            "durability": self.storage_durability,
            "max_payload_bytes": self.security_max_payload_bytes,
            "ranking": ranking,
            "quarantine": quarantine,
            "trust": dict(self.security_trust),
            "default_trust": self.security_default_trust,
            "observe_capacity": self.storage_observe_capacity,
            "observe_idle_ttl_s": self.storage_observe_idle_ttl_s,
            "gc_interval_s": self.storage_gc_interval_s or None,
            "max_disk_mb": self.storage_max_disk_mb or None,
            "encryption_key": self.storage_encryption_key or None,
            "key_provider": default_key_provider(self.storage_key_dir or None),
        }
        opts.update(extra)
        return Options(**opts)

    def open_engine(self, **extra: Any) -> Engine:
        """Open the store these settings describe (``storage.backend``, ``data_dir``)."""
        from .engine import Engine
        from .storage import MemoryStorage, SQLiteStorage
        from .storage.sqlite import sqlite_path

        opts = self.engine_options(**extra)
        if self.storage_backend == "memory":
            return Engine(MemoryStorage(), opts)
        os.makedirs(self.data_dir, exist_ok=True)
        storage = SQLiteStorage(
            sqlite_path(self.data_dir),
            durability=opts.durability,
            encryption_key=opts.encryption_key,
            key_provider=opts.key_provider,
        )
        return Engine(storage, opts)


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInputError(
            f"listen {listen!r} must look like HOST:PORT, e.g. 127.0.0.1:8080", field="listen"
        )
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """One row of the settings table, for ``--help`` and the docs."""

    name: str  # the Settings attribute
    key: str  # dotted key under [node]
    env: str
    type: str
    default: Any
    help: str


def settings_table() -> list[SettingInfo]:
    rows: list[SettingInfo] = []
    for f in fields(Settings):
        key = f.metadata["key"]
        factory: Any = f.default_factory
        default = f.default if f.default is not MISSING else factory()
        rows.append(
            SettingInfo(
                name=f.name,
                key=key,
                env="DWBASE_" + key.replace(".", "_").upper(),
                type=_type_name(f.type),
                default=default,
                help=f.metadata["help"],
            )
        )
    return rows


def _type_name(annotation: Any) -> str:
    text = str(annotation)
    return {"dict[str, float]": "table", "list[str]": "list"}.get(text, text)


def settings_markdown() -> str:
    """The settings table as Markdown (docs/node.md embeds it; a test keeps them equal)."""
    lines = [
        "| key under `[node]` | environment | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for row in settings_table():
        default = json.dumps(row.default) if not isinstance(row.default, str) else row.default
        lines.append(f"| `{row.key}` | `{row.env}` | {row.type} | `{default}` | {row.help} |")
    return "\n".join(lines) + "\n"


def _coerce(row: SettingInfo, value: Any, source: str) -> Any:
    where = f"{row.key} ({source})"
    if row.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
    elif row.type == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif row.type == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif row.type == "str":
        if isinstance(value, str):
            return value
    elif row.type == "list":
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
    elif row.type == "table":
        if isinstance(value, str):
            out: dict[str, float] = {}
            for part in filter(None, (p.strip() for p in value.split(","))):
                name, sep, num = part.partition("=")
                try:
                    out[name.strip()] = float(num)
                except ValueError:
                    sep = ""
                if not sep:
                    raise InvalidInputError(
                        f"{where}: expected name=number pairs, got {part!r}", field=row.key
                    ) from None
            return out
        if isinstance(value, Mapping) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
        ):
            return {str(k): float(v) for k, v in value.items()}
    raise InvalidInputError(f"{where}: expected {row.type}, got {value!r}", field=row.key)


def _flatten(table: Mapping[str, Any], prefix: str, out: dict[str, Any], rows: set[str]) -> None:
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and key not in rows:
            _flatten(v, key + ".", out, rows)
        else:
            out[key] = v


def load_settings(
    path: str | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults ← TOML file ``path`` ← ``DWBASE_*`` environment ← ``overrides``.

    ``overrides`` keys are dotted keys (``"health.disk_warn_pct"``) or attribute names
    (``"health_disk_warn_pct"``); ``None`` values are ignored (an unset CLI flag).
    """
    rows = {r.key: r for r in settings_table()}
    by_name = {r.name: r for r in rows.values()}
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise InvalidInputError(f"config file {path} does not exist", field="config") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"config file {path}: {exc}", field="config") from None
        extra = sorted(set(doc) - {"node"})
        if extra:
            raise InvalidInputError(
                f"{path}: unknown top-level key {extra[0]!r}; settings live under [node]",
                field=extra[0],
            )
        node = doc.get("node", {})
        if not isinstance(node, Mapping):
            raise InvalidInputError(f"{path}: node must be a table", field="node")
        flat: dict[str, Any] = {}
        _flatten(node, "", flat, set(rows))
        flat, _ = translate_original(flat, path)  # the original DWBase's keys, with warnings
        for key, value in flat.items():
            row = rows.get(key)
            if row is None:
                raise InvalidInputError(
                    f"{path}: unknown setting 'node.{key}'; known settings are listed in "
                    "docs/node.md",
                    field=f"node.{key}",
                )
            values[row.name] = _coerce(row, value, path)
    env = os.environ if environ is None else environ
    for row in rows.values():
        if row.env in env:
            values[row.name] = _coerce(row, env[row.env], row.env)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        row = rows.get(key) or by_name.get(key)
        if row is None:
            raise InvalidInputError(f"unknown setting {key!r}", field=key)
        values[row.name] = _coerce(row, value, "override")
    settings = replace(Settings(), **values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    split_listen(s.listen)
    if s.storage_backend not in ("sqlite", "memory"):
        raise InvalidInputError(
            f"storage.backend {s.storage_backend!r} must be sqlite or memory",
            field="storage.backend",
        )
    if s.storage_encryption_key and s.storage_backend != "sqlite":
        raise InvalidInputError(
            "storage.encryption_key needs storage.backend = sqlite (a store on disk)",
            field="storage.encryption_key",
        )
    if s.storage_durability not in ("normal", "full"):
        raise InvalidInputError(
            f"storage.durability {s.storage_durability!r} must be normal or full",
            field="storage.durability",
        )
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise InvalidInputError(
            f"log_level {s.log_level!r} must be debug, info, warning or error", field="log_level"
        )
    if not 0 <= s.ask_workers <= 64:
        raise InvalidInputError(
            f"ask_workers {s.ask_workers} must be between 0 and 64", field="ask_workers"
        )
    if s.ask_workers and s.storage_backend != "sqlite":
        raise InvalidInputError(
            "ask_workers needs storage.backend = sqlite (workers open the same store)",
            field="ask_workers",
        )
    if not 1 <= s.read_threads <= 64:
        raise InvalidInputError(
            f"read_threads {s.read_threads} must be between 1 and 64", field="read_threads"
        )
    for name in (
        "limits_max_connections",
        "limits_keep_alive_s",
        "limits_header_timeout_s",
        "limits_body_timeout_s",
        "limits_observe_per_token",
        "limits_observe_total",
        "limits_observe_queue_per_token",
        "limits_observe_queue_total",
    ):
        if getattr(s, name) <= 0:
            key = name.replace("_", ".", 1)
            raise InvalidInputError(f"{key} must be positive", field=key)
    if s.storage_observe_capacity > s.limits_observe_queue_per_token:
        raise InvalidInputError(
            f"storage.observe_capacity {s.storage_observe_capacity} is above "
            f"limits.observe_queue_per_token {s.limits_observe_queue_per_token}: no token "
            "could open a subscription with the default capacity",
            field="storage.observe_capacity",
        )
    for name in ("auth_remember_rate", "auth_ask_rate", "storage_max_disk_mb"):
        if getattr(s, name) < 0:
            raise InvalidInputError(f"{name} must not be negative", field=name)
    for name in ("swarm_hello_interval_s", "swarm_antientropy_interval_s"):
        if getattr(s, name) < 0:
            key = name.replace("_", ".", 1)
            raise InvalidInputError(f"{key} must not be negative", field=key)
    if s.swarm_stream_max_age_s <= 0 or s.swarm_hello_interval_s == 0:
        raise InvalidInputError(
            "swarm.stream_max_age_s and swarm.hello_interval_s must be positive",
            field="swarm.stream_max_age_s",
        )
    if s.health_min_free_mb < 0:
        raise InvalidInputError(
            "health.min_free_mb must not be negative", field="health.min_free_mb"
        )
    if not 0 <= s.health_disk_warn_pct <= s.health_disk_degraded_pct <= 100:
        raise InvalidInputError(
            "need 0 <= health.disk_warn_pct <= health.disk_degraded_pct <= 100",
            field="health.disk_warn_pct",
        )

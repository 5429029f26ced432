"""The component's configuration: the ``DWBASE_*`` environment variables the host sets.

One table (:data:`VARIABLES`) gives every variable its default and meaning; the docs and
``component.manifest.json`` are made from it. Booleans are parsed as booleans (``0``,
``false``, ``no``, ``off`` and the empty string are false; ``1``, ``true``, ``yes``, ``on``
true); anything else is a configuration error that every call reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidInputError

# name -> (default, meaning); a default of "" means unset.
VARIABLES: dict[str, tuple[str, str]] = {
    "DWBASE_DATA_DIR": ("/data", "directory (preopened by the host) holding the atom log"),
    "DWBASE_TENANT_ID": ("default", "tenant whose namespace `tenant:<id>/` the caller works in"),
    "DWBASE_WORKER_ID": ("component", "worker recorded on atoms that name none"),
    "DWBASE_ENFORCE_TENANT_NAMESPACE": ("true", "worlds must be under `tenant:<id>/`"),
    "DWBASE_ALLOW_READ_WORLDS": ("", "comma-separated worlds the caller may read"),
    "DWBASE_ALLOW_WRITE_WORLDS": ("", "comma-separated worlds the caller may write"),
    "DWBASE_ALLOW_READ_PREFIXES": ("", "comma-separated world prefixes the caller may read"),
    "DWBASE_ALLOW_WRITE_PREFIXES": ("", "comma-separated world prefixes the caller may write"),
    "DWBASE_MAX_PAYLOAD_BYTES": ("65536", "largest payload-json accepted, in UTF-8 bytes"),
    "DWBASE_IMPORTANCE_CAP": ("0.7", "highest importance a caller may give an atom"),
    "DWBASE_ALLOWED_KINDS": ("observation,reflection", "kinds a caller may remember"),
    "DWBASE_ALLOWED_LABELS": ("", "comma-separated labels a caller may use (unset: any)"),
    "DWBASE_ALLOW_POLICY_LABELS": ("false", "allow `policy:*` and world lifecycle labels"),
    "DWBASE_MAX_DISK_MB": ("", "disk budget of the store; gc evicts the least valuable atoms"),
    "DWBASE_HEALTH_DISK_WARN_PCT": ("80", "disk use at which health reports `warn`"),
    "DWBASE_HEALTH_DISK_DEGRADED_PCT": ("90", "disk use at which health is `degraded`"),
    "DWBASE_OBSERVE_QUEUE_CAPACITY": ("10000", "atoms an observe handle queues at most"),
    "DWBASE_OBSERVE_DROP_POLICY": ("drop_oldest", "`drop_oldest` or `drop_newest` when full"),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
PROTECTED_LABELS = ("policy:", "world_meta", "world_status:")


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    data_dir: str = "/data"
    tenant_id: str = "default"
    worker_id: str = "component"
    enforce_tenant_namespace: bool = True
    allow_read_worlds: tuple[str, ...] = ()
    allow_write_worlds: tuple[str, ...] = ()
    allow_read_prefixes: tuple[str, ...] = ()
    allow_write_prefixes: tuple[str, ...] = ()
    max_payload_bytes: int = 65536
    importance_cap: float = 0.7
    allowed_kinds: tuple[str, ...] = ("observation", "reflection")
    allowed_labels: tuple[str, ...] | None = None
    allow_policy_labels: bool = False
    max_disk_mb: float | None = None
    health_disk_warn_pct: float = 80.0
    health_disk_degraded_pct: float = 90.0
    observe_queue_capacity: int = 10000
    observe_drop_policy: str = "drop_oldest"

    @property
    def namespace(self) -> str:
        return f"tenant:{self.tenant_id}/"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ComponentConfig:
        """The configuration the variables in ``env`` give; ``InvalidInputError`` names a bad
        one.

        >>> ComponentConfig.from_env({"DWBASE_TENANT_ID": "acme"}).namespace
        'tenant:acme/'
        """

        def raw(name: str) -> str:
            return env.get(name, VARIABLES[name][0]).strip()

        def items(name: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in raw(name).split(",") if x.strip())

        def boolean(name: str) -> bool:
            value = raw(name).lower()
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
            raise _bad(name, value, "is not a boolean (true/false, 1/0, yes/no, on/off)")

        def number(name: str, low: float, high: float | None = None) -> float:
            value = raw(name)
            try:
                x = float(value)
            except ValueError:
                raise _bad(name, value, "is not a number") from None
            if not (low <= x and (high is None or x <= high)):
                span = f"[{low}, {high}]" if high is not None else f">= {low}"
                raise _bad(name, value, f"is outside {span}")
            return x

        def integer(name: str, low: int) -> int:
            value = raw(name)
            try:
                x = int(value)
            except ValueError:
                raise _bad(name, value, "is not a whole number") from None
            if x < low:
                raise _bad(name, value, f"is below {low}")
            return x

        tenant = raw("DWBASE_TENANT_ID")
        if not tenant or any(c in tenant for c in "/*") or any(ord(c) < 32 for c in tenant):
            raise _bad("DWBASE_TENANT_ID", tenant, "must be non-empty, without '/' or '*'")
        drop = raw("DWBASE_OBSERVE_DROP_POLICY")
        if drop not in ("drop_oldest", "drop_newest"):
            raise _bad("DWBASE_OBSERVE_DROP_POLICY", drop, "must be drop_oldest or drop_newest")
        labels = items("DWBASE_ALLOWED_LABELS")
        warn = number("DWBASE_HEALTH_DISK_WARN_PCT", 0, 100)
        degraded = number("DWBASE_HEALTH_DISK_DEGRADED_PCT", 0, 100)
        if degraded < warn:
            raise _bad(
                "DWBASE_HEALTH_DISK_DEGRADED_PCT", str(degraded), f"is below the warn level {warn}"
            )
        return cls(
            data_dir=raw("DWBASE_DATA_DIR") or "/data",
            tenant_id=tenant,
            worker_id=raw("DWBASE_WORKER_ID") or "component",
            enforce_tenant_namespace=boolean("DWBASE_ENFORCE_TENANT_NAMESPACE"),
            allow_read_worlds=items("DWBASE_ALLOW_READ_WORLDS"),
            allow_write_worlds=items("DWBASE_ALLOW_WRITE_WORLDS"),
            allow_read_prefixes=items("DWBASE_ALLOW_READ_PREFIXES"),
            allow_write_prefixes=items("DWBASE_ALLOW_WRITE_PREFIXES"),
            max_payload_bytes=integer("DWBASE_MAX_PAYLOAD_BYTES", 1),
            importance_cap=number("DWBASE_IMPORTANCE_CAP", 0.0, 1.0),
            allowed_kinds=items("DWBASE_ALLOWED_KINDS"),
            allowed_labels=labels if "DWBASE_ALLOWED_LABELS" in env else None,
            allow_policy_labels=boolean("DWBASE_ALLOW_POLICY_LABELS"),
            max_disk_mb=number("DWBASE_MAX_DISK_MB", 0.0) if raw("DWBASE_MAX_DISK_MB") else None,
            health_disk_warn_pct=warn,
            health_disk_degraded_pct=degraded,
            observe_queue_capacity=integer("DWBASE_OBSERVE_QUEUE_CAPACITY", 1),
            observe_drop_policy=drop,
        )


def _bad(name: str, value: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"configuration: {name}={value!r} {why}", variable=name)

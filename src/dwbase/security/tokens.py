"""API tokens: each is bound to a worker and a capability set, and stored hashed.

A token looks like ``dwb_<id>_<secret>``. The file (``<data_dir>/tokens.json``, mode 0600)
keeps the id, the SHA-256 of the secret and the capabilities, never the secret itself: the
secret is 256 random bits, so a fast hash is enough and a stolen file yields no usable token.
The node re-reads the file when it changes, so tokens created or revoked with the CLI apply to
a running node at once.

>>> import tempfile, os
>>> store = TokenStore(os.path.join(tempfile.mkdtemp(), "tokens.json"))
>>> secret, info = store.create("agent-1", read=["demo*"], write=["demo"])
>>> store.authenticate(secret).caller().can_read("demo-2")
True
>>> store.revoke(info.id).revoked_at is not None
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import InvalidInputError, NotFoundError, UnauthenticatedError
from ..model import KINDS, validate_importance
from .caps import Caller

TOKENS_FILE = "tokens.json"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token (without its secret)."""

    id: str
    worker: str
    read: tuple[str, ...] = ("*",)
    write: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None
    importance_cap: float | None = None
    remember_rate: float | None = None  # atoms per second; None = the node's default
    ask_rate: float | None = None  # asks per second; None = the node's default
    admin: bool = False  # quarantine, index rebuild, token-free operator routes
    name: str = ""
    created_at: float = 0.0
    revoked_at: float | None = None
    secret_sha256: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def caller(self) -> Caller:
        return Caller(
            worker=self.worker,
            read=self.read,
            write=self.write,
            kinds=self.kinds,
            labels=self.labels,
            importance_cap=self.importance_cap,
            name=f"token {self.name or self.id}",
        )

    def to_dict(self, *, with_hash: bool = False) -> dict[str, Any]:
        out = asdict(self)
        for key in ("read", "write", "kinds", "labels"):
            if out[key] is not None:
                out[key] = list(out[key])
        if not with_hash:
            out.pop("secret_sha256")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenInfo:
        def tup(v: Any) -> tuple[str, ...] | None:
            return None if v is None else tuple(str(x) for x in v)

        return cls(
            id=str(data["id"]),
            worker=str(data["worker"]),
            read=tup(data.get("read", ["*"])) or (),
            write=tup(data.get("write", ["*"])) or (),
            kinds=tup(data.get("kinds")),
            labels=tup(data.get("labels")),
            importance_cap=data.get("importance_cap"),
            remember_rate=data.get("remember_rate"),
            ask_rate=data.get("ask_rate"),
            admin=bool(data.get("admin", False)),
            name=str(data.get("name", "")),
            created_at=float(data.get("created_at", 0.0)),
            revoked_at=data.get("revoked_at"),
            secret_sha256=str(data.get("secret_sha256", "")),
        )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _patterns(values: Sequence[str] | None, name: str) -> tuple[str, ...]:
    if values is None or isinstance(values, str):
        raise InvalidInputError(f"{name} must be a list of world patterns", field=name)
    out = tuple(values)
    for p in out:
        if not isinstance(p, str) or not p or any(c.isspace() for c in p):
            raise InvalidInputError(f"{name}: {p!r} is not a world pattern", field=name)
    return out


def _rate(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInputError(f"{name} must be a positive number per second", field=name)
    return float(value)


class TokenStore:
    """The token file of one node. Thread-safe; re-reads the file when it changes."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenInfo] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    @classmethod
    def for_data_dir(cls, data_dir: str) -> TokenStore:
        return cls(os.path.join(data_dir, TOKENS_FILE))

    # ------------------------------------------------------------------ file

    def _load(self) -> None:
        # No file (a node without tokens) is looked for on every request, so the first token
        # created counts at once; os.access answers that without raising.
        if self._stamp is None and not os.access(self.path, os.F_OK):
            self._tokens = {}
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._tokens, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with open(self.path, encoding="utf-8") as fh:
            doc = json.load(fh)
        self._tokens = {t["id"]: TokenInfo.from_dict(t) for t in doc.get("tokens", [])}
        self._stamp = stamp

    def _refresh(self) -> None:
        # A stat per request is cheap, but not free: look at most every 0.5 s.
        now = time.monotonic()
        if now - self._checked >= 0.5 or self._stamp is None:
            self._checked = now
            self._load()

    def _save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        doc = {
            "format": _FORMAT,
            "tokens": [t.to_dict(with_hash=True) for t in self._tokens.values()],
        }
        tmp = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._stamp = None
        self._load()

    # ------------------------------------------------------------------ management

    def create(
        self,
        worker: str,
        *,
        read: Sequence[str] = ("*",),
        write: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        importance_cap: float | None = None,
        remember_rate: float | None = None,
        ask_rate: float | None = None,
        admin: bool = False,
        name: str = "",
    ) -> tuple[str, TokenInfo]:
        """Create a token; returns ``(secret, info)``. The secret is shown only here."""
        if not isinstance(worker, str) or not worker.strip():
            raise InvalidInputError("a token needs a worker name", field="worker")
        if kinds is not None:
            for k in kinds:
                if k not in KINDS:
                    raise InvalidInputError(
                        f"kind {k!r} is not one of {', '.join(KINDS)}", field="kinds"
                    )
        token_id = secrets.token_hex(6)
        secret = f"dwb_{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(
            id=token_id,
            worker=worker,
            read=_patterns(read, "read"),
            write=_patterns(read if write is None else write, "write"),
            kinds=tuple(kinds) if kinds is not None else None,
            labels=tuple(labels) if labels is not None else None,
            importance_cap=(
                validate_importance(importance_cap) if importance_cap is not None else None
            ),
            remember_rate=_rate(remember_rate, "remember_rate"),
            ask_rate=_rate(ask_rate, "ask_rate"),
            admin=bool(admin),
            name=name,
            created_at=self._clock(),
            secret_sha256=_hash(secret),
        )
        with self._lock:
            self._load()
            self._tokens[token_id] = info
            self._save()
        return secret, info

    def list(self, *, include_revoked: bool = True) -> list[TokenInfo]:
        with self._lock:
            self._load()
            return [t for t in self._tokens.values() if include_revoked or t.active]

    def revoke(self, token_id: str) -> TokenInfo:
        with self._lock:
            self._load()
            info = self._tokens.get(token_id)
            if info is None:
                raise NotFoundError(f"no token with id {token_id!r}", id=token_id)
            if info.revoked_at is None:
                info = replace(info, revoked_at=self._clock())
                self._tokens[token_id] = info
                self._save()
            return info

    # ------------------------------------------------------------------ requests

    def has_tokens(self) -> bool:
        """True once any token was ever created (revoking all does not reopen the node)."""
        with self._lock:
            self._refresh()
            return bool(self._tokens)

    def authenticate(self, secret: str) -> TokenInfo:
        parts = secret.split("_", 2) if isinstance(secret, str) else []
        if len(parts) != 3 or parts[0] != "dwb":
            raise UnauthenticatedError("malformed token; expected 'Bearer dwb_<id>_<secret>'")
        with self._lock:
            self._refresh()
            info = self._tokens.get(parts[1])
        if info is None or not hmac.compare_digest(info.secret_sha256, _hash(secret)):
            raise UnauthenticatedError("unknown token")
        if info.revoked_at is not None:
            raise UnauthenticatedError(f"token {info.id} was revoked")
        return info


def create_token(data_dir: str, worker: str, **caps: Any) -> tuple[str, TokenInfo]:
    """``TokenStore.for_data_dir(data_dir).create(worker, **caps)`` (for the CLI)."""
    return TokenStore.for_data_dir(data_dir).create(worker, **caps)


def list_tokens(data_dir: str, *, include_revoked: bool = True) -> list[TokenInfo]:
    return TokenStore.for_data_dir(data_dir).list(include_revoked=include_revoked)


def revoke_token(data_dir: str, token_id: str) -> TokenInfo:
    return TokenStore.for_data_dir(data_dir).revoke(token_id)

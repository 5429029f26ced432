"""API tokens: each is bound to a worker and a capability set, and stored hashed.

A token looks like ``dwb_<id>_<secret>``. The file (``<data_dir>/tokens.json``, mode 0600)
keeps the id, the SHA-256 of the secret and the capabilities, never the secret itself: the
secret is 256 random bits, so a fast hash is enough and a stolen file yields no usable token.
The node re-reads the file when it changes, so tokens created or revoked with the CLI apply to
a running node at once.

Authentication fails closed. The first token created (or a node started with
``auth.required``) leaves a marker, ``auth.json``, next to the token file; from then on the
node demands a token even if ``tokens.json`` is deleted or emptied, and a token file that
cannot be read or parsed refuses every request with :class:`UnavailableError` naming the
file, never opening the node. A store that never had tokens has neither file.

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
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import InvalidInputError, NotFoundError, UnauthenticatedError, UnavailableError
from ..model import KINDS, validate_importance
from .caps import Caller

log = logging.getLogger("dwbase.security.tokens")

TOKENS_FILE = "tokens.json"
AUTH_MARKER = "auth.json"
"""Next to the token file: ``{"required": true}`` once tokens were ever required."""
_FORMAT = 1
_CAPS = ("read", "write", "kinds", "labels", "operate", "policy", "manage")


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
    # Created with --admin (operate, policy and manage over its write worlds). Kept in the
    # file so older readers see it; the capabilities below are what is checked.
    admin: bool = False
    operate: tuple[str, ...] = ()  # quarantine, gc, rebuilding every index
    policy: tuple[str, ...] = ()  # policy:* atoms (retention, replication, ...)
    manage: tuple[str, ...] = ()  # world_status:* atoms (create, archive, resume)
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
            operate=self.operate,
            policy=self.policy,
            manage=self.manage,
        )

    def to_dict(self, *, with_hash: bool = False) -> dict[str, Any]:
        out = asdict(self)
        for key in _CAPS:
            if out[key] is not None:
                out[key] = list(out[key])
        if not with_hash:
            out.pop("secret_sha256")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenInfo:
        def tup(v: Any) -> tuple[str, ...] | None:
            if v is None:
                return None
            if not isinstance(v, list | tuple):
                raise TypeError(f"expected a list, got {v!r}")
            return tuple(str(x) for x in v)

        write = tup(data.get("write", ["*"])) or ()
        admin = bool(data.get("admin", False))
        # A file written before operate/policy/manage existed: its admin flag meant operator
        # rights, which are now scoped to the worlds the token may write.
        legacy = write if admin else ()
        return cls(
            id=str(data["id"]),
            worker=str(data["worker"]),
            read=tup(data.get("read", ["*"])) or (),
            write=write,
            kinds=tup(data.get("kinds")),
            labels=tup(data.get("labels")),
            importance_cap=_checked(data, "importance_cap", _cap),
            remember_rate=_checked(data, "remember_rate", _positive),
            ask_rate=_checked(data, "ask_rate", _positive),
            admin=admin,
            operate=tup(data.get("operate", legacy)) or (),
            policy=tup(data.get("policy", legacy)) or (),
            manage=tup(data.get("manage", legacy)) or (),
            name=str(data.get("name", "")),
            created_at=_checked(data, "created_at", _instant) or 0.0,
            revoked_at=_checked(data, "revoked_at", _instant),
            secret_sha256=str(data.get("secret_sha256", "")),
        )


def _checked(data: dict[str, Any], field: str, check: Callable[[Any], bool]) -> float | None:
    """A number field of a token as the file holds it (absent or null: None); a value of the
    wrong type or range (a hand edit) makes the whole file unusable, so requests are refused
    rather than failing later inside a request or being read as no limit."""
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not check(value):
        raise ValueError(f"token {data.get('id')!r}: {field} {value!r} is not valid")
    return float(value)


def _cap(v: float) -> bool:
    return 0.0 <= v <= 1.0


def _positive(v: float) -> bool:
    return 0.0 < v < math.inf


def _instant(v: float) -> bool:
    return 0.0 <= v < math.inf


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
        self.marker_path = os.path.join(os.path.dirname(os.path.abspath(path)), AUTH_MARKER)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenInfo] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._error: str | None = None  # why the file cannot be used; requests are refused
        self._required = False  # tokens were required once: never reopen (sticky)
        self.generation = 0  # moves whenever what the file says changes

    @classmethod
    def for_data_dir(cls, data_dir: str) -> TokenStore:
        return cls(os.path.join(data_dir, TOKENS_FILE))

    # ------------------------------------------------------------------ file

    def _load(self) -> None:
        # No file (a node without tokens) is looked for on every request, so the first token
        # created counts at once; os.access answers that without raising.
        if self._stamp is None and not os.access(self.path, os.F_OK):
            self._forget()
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._forget()
            return
        except OSError as exc:
            self._broken(None, exc)
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = json.load(fh)
            if not isinstance(doc, dict) or not isinstance(doc.get("tokens", []), list):
                raise ValueError("expected an object with a 'tokens' list")
            tokens = {str(t["id"]): TokenInfo.from_dict(t) for t in doc.get("tokens", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._broken(stamp, exc)
            return
        self._tokens, self._stamp, self._error = tokens, stamp, None
        self.generation += 1
        self._required = True  # a token file exists: tokens are required from now on
        if tokens:
            self._mark_required()

    def _forget(self) -> None:
        if self._tokens or self._stamp is not None or self._error is not None:
            self.generation += 1
            log.warning("token file %s disappeared; tokens stay required", self.path)
        self._tokens, self._stamp, self._error = {}, None, None

    def _broken(self, stamp: tuple[int, int, int] | None, exc: Exception) -> None:
        self._error = (
            f"token file {self.path} cannot be read ({type(exc).__name__}: {exc}); every "
            "request is refused until it is repaired or restored"
        )
        if stamp is None or stamp != self._stamp:
            log.error("%s", self._error)
        self._tokens, self._stamp = {}, stamp
        self._required = True
        self.generation += 1

    def _refresh(self) -> None:
        # A stat per request is cheap, but not free: look at most every 0.5 s.
        now = time.monotonic()
        if now - self._checked >= 0.5 or self._stamp is None:
            self._checked = now
            self._load()

    def _mark_required(self) -> None:
        """Leave the marker that keeps authentication on (best effort, logged on failure)."""
        self._required = True
        if os.access(self.marker_path, os.F_OK):
            return
        try:
            os.makedirs(os.path.dirname(self.marker_path), exist_ok=True)
            _write_private(self.marker_path, {"required": True, "since": self._clock()})
        except OSError as exc:
            log.error("cannot write %s: %s", self.marker_path, exc)

    def _save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._mark_required()
        doc = {
            "format": _FORMAT,
            "tokens": [t.to_dict(with_hash=True) for t in self._tokens.values()],
        }
        _write_private(self.path, doc)
        self._stamp = None
        self._load()

    def _usable(self) -> None:
        """Raise when the file cannot be used (a broken file is never overwritten)."""
        self._load()
        if self._error is not None:
            raise UnavailableError(self._error, file=self.path)

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
        operate: Sequence[str] | None = None,
        policy: Sequence[str] | None = None,
        manage: Sequence[str] | None = None,
        name: str = "",
    ) -> tuple[str, TokenInfo]:
        """Create a token; returns ``(secret, info)``. The secret is shown only here.

        ``operate``, ``policy`` and ``manage`` are world patterns for operator actions,
        policy atoms and world lifecycle; ``admin=True`` gives each of them the token's write
        patterns unless it is given explicitly.
        """
        if not isinstance(worker, str) or not worker.strip():
            raise InvalidInputError("a token needs a worker name", field="worker")
        if kinds is not None:
            for k in kinds:
                if k not in KINDS:
                    raise InvalidInputError(
                        f"kind {k!r} is not one of {', '.join(KINDS)}", field="kinds"
                    )
        writes = _patterns(read if write is None else write, "write")

        def scoped(values: Sequence[str] | None, field: str) -> tuple[str, ...]:
            if values is None:
                return writes if admin else ()
            return _patterns(values, field)

        token_id = secrets.token_hex(6)
        secret = f"dwb_{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(
            id=token_id,
            worker=worker,
            read=_patterns(read, "read"),
            write=writes,
            kinds=tuple(kinds) if kinds is not None else None,
            labels=tuple(labels) if labels is not None else None,
            importance_cap=(
                validate_importance(importance_cap) if importance_cap is not None else None
            ),
            remember_rate=_rate(remember_rate, "remember_rate"),
            ask_rate=_rate(ask_rate, "ask_rate"),
            admin=bool(admin),
            operate=scoped(operate, "operate"),
            policy=scoped(policy, "policy"),
            manage=scoped(manage, "manage"),
            name=name,
            created_at=self._clock(),
            secret_sha256=_hash(secret),
        )
        with self._lock:
            self._usable()
            self._tokens[token_id] = info
            self._save()
        return secret, info

    def list(self, *, include_revoked: bool = True) -> list[TokenInfo]:
        with self._lock:
            self._usable()
            return [t for t in self._tokens.values() if include_revoked or t.active]

    def revoke(self, token_id: str) -> TokenInfo:
        with self._lock:
            self._usable()
            info = self._tokens.get(token_id)
            if info is None:
                raise NotFoundError(f"no token with id {token_id!r}", id=token_id)
            if info.revoked_at is None:
                info = replace(info, revoked_at=self._clock())
                self._tokens[token_id] = info
                self._save()
            return info

    # ------------------------------------------------------------------ requests

    def mark_required(self) -> None:
        """Record that this node requires tokens (``auth.required``): it never reopens."""
        with self._lock:
            self._mark_required()

    def required(self) -> bool:
        """True once tokens were ever required: a token was created, the token file exists
        (even empty or unreadable), or the ``auth.json`` marker says so. Deleting or emptying
        the token file, or revoking every token, does not reopen the node."""
        with self._lock:
            self._refresh()
            if not self._required and os.access(self.marker_path, os.F_OK):
                self._required = True
            return self._required

    def authenticate(self, secret: str) -> TokenInfo:
        parts = secret.split("_", 2) if isinstance(secret, str) else []
        with self._lock:
            self._refresh()
            error = self._error
            info = self._tokens.get(parts[1]) if len(parts) == 3 else None
        if error is not None:
            raise UnavailableError(error, file=self.path)
        if len(parts) != 3 or parts[0] != "dwb":
            raise UnauthenticatedError("malformed token; expected 'Bearer dwb_<id>_<secret>'")
        if info is None or not hmac.compare_digest(info.secret_sha256, _hash(secret)):
            raise UnauthenticatedError("unknown token")
        if info.revoked_at is not None:
            raise UnauthenticatedError(f"token {info.id} was revoked")
        return info

    def recheck(self, token_id: str) -> None:
        """Raise unless token ``token_id`` is still usable (for streams opened earlier)."""
        with self._lock:
            self._refresh()
            error = self._error
            info = self._tokens.get(token_id)
        if error is not None:
            raise UnavailableError(error, file=self.path)
        if info is None:
            raise UnauthenticatedError(f"token {token_id} no longer exists")
        if info.revoked_at is not None:
            raise UnauthenticatedError(f"token {token_id} was revoked")


def _write_private(path: str, doc: dict[str, Any]) -> None:
    """Write JSON atomically (temp file, fsync, rename) with mode 0600."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def create_token(data_dir: str, worker: str, **caps: Any) -> tuple[str, TokenInfo]:
    """``TokenStore.for_data_dir(data_dir).create(worker, **caps)`` (for the CLI)."""
    return TokenStore.for_data_dir(data_dir).create(worker, **caps)


def list_tokens(data_dir: str, *, include_revoked: bool = True) -> list[TokenInfo]:
    return TokenStore.for_data_dir(data_dir).list(include_revoked=include_revoked)


def revoke_token(data_dir: str, token_id: str) -> TokenInfo:
    return TokenStore.for_data_dir(data_dir).revoke(token_id)

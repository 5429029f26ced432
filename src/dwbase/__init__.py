"""DWBase: a memory database for AI agents and digital workers.

>>> import dwbase
>>> with dwbase.open(":memory:") as db:
...     aid = db.remember("demo", "agent-1", "observation", {"text": "checkout latency 820ms"},
...                       importance=0.9, labels=["latency"])
...     db.ask("demo", "why is checkout slow?").hits[0].atom.id == aid
True
"""

from __future__ import annotations

from .api import AsyncDWBase, open, open_async
from .engine import Engine
from .errors import (
    CapabilityDeniedError,
    ConflictError,
    DWBaseError,
    InternalError,
    InvalidHandleError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    StorageError,
    UnauthenticatedError,
    UnavailableError,
)
from .model import KINDS, LINK_KINDS, Answer, Atom, AtomFilter, Hit, Link
from .options import Options
from .policy import Policy
from .protocol import AsyncDWBaseAPI, DWBaseAPI
from .results import AtomId, GcReport, IngestResult
from .security import Caller

DWBase = Engine
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The HTTP client pulls in httpx; load it only when asked for, so ``import dwbase``
    # stays light (and works inside the WASI component).
    if name == "Client":
        from .client import Client

        return Client
    if name == "AsyncClient":
        from .aclient import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'dwbase' has no attribute {name!r}")


__all__ = [
    "KINDS",
    "LINK_KINDS",
    "Answer",
    "AsyncClient",
    "AsyncDWBase",
    "AsyncDWBaseAPI",
    "Atom",
    "AtomFilter",
    "AtomId",
    "Caller",
    "CapabilityDeniedError",
    "Client",
    "ConflictError",
    "DWBase",
    "DWBaseAPI",
    "DWBaseError",
    "Engine",
    "GcReport",
    "Hit",
    "IngestResult",
    "InternalError",
    "InvalidHandleError",
    "InvalidInputError",
    "LimitExceededError",
    "Link",
    "NotFoundError",
    "Options",
    "PayloadTooLargeError",
    "Policy",
    "RateLimitedError",
    "StorageError",
    "UnauthenticatedError",
    "UnavailableError",
    "open",
    "open_async",
]

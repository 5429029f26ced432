"""Where a command's store comes from: an embedded data dir or a node's HTTP API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer

from ..engine import Engine
from ..errors import InvalidInputError, NotFoundError, UnavailableError
from ..protocol import DWBaseAPI

STORE_FILE = "dwbase.sqlite3"

Backend = DWBaseAPI
"""What a command talks to: the embedded engine or ``dwbase.Client`` (a node), which offer
the same methods (:class:`dwbase.DWBaseAPI`), so every store command runs on either."""


@dataclass(frozen=True, slots=True)
class State:
    data_dir: Path | None
    api: str | None
    token: str | None

    def require_data_dir(self, what: str) -> Path:
        """The embedded data dir, for commands that only work on local files."""
        if self.data_dir is None:
            raise InvalidInputError(
                f"{what} works on a local store: give --data-dir DIR (or DWBASE_DATA_DIR)",
                field="data_dir",
            )
        return self.data_dir


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # pragma: no cover - the root callback always sets it
        raise InvalidInputError("internal: CLI state missing")
    return obj


def store_exists(data_dir: Path) -> bool:
    return (data_dir / STORE_FILE).is_file()


@contextmanager
def open_backend(
    ctx: typer.Context, *, create: bool = False, long_lived: bool = False
) -> Iterator[Backend]:
    """Open the embedded store or connect to the node, and close it afterwards.

    ``create`` lets a write command make a new store; read commands refuse a directory that
    holds no store, so a typo in ``--data-dir`` is reported instead of creating a new store.
    Only a ``long_lived`` command (a server) builds HNSW graphs; the others use saved ones.
    """
    st = state(ctx)
    _one_store(st)
    backend: Backend
    if st.api:
        backend = _client(st.api, st.token)
    elif st.data_dir is not None:
        backend = _embedded(st.data_dir, create=create, ann_build=long_lived)
    else:
        raise InvalidInputError(
            "no store given: use --data-dir DIR (or DWBASE_DATA_DIR) for an embedded store, "
            "or --api URL (or DWBASE_API) for a node",
            field="data_dir",
        )
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def open_local(ctx: typer.Context, what: str) -> Iterator[Engine]:
    """The embedded store of ``--data-dir``, for commands that work on its files (``what``
    names the command in the error given with ``--api`` or without a data dir)."""
    st = state(ctx)
    _one_store(st)
    engine = _embedded(st.require_data_dir(what), create=False)
    try:
        yield engine
    finally:
        engine.close()


def _one_store(st: State) -> None:
    if st.api and st.data_dir is not None:
        raise InvalidInputError(
            "give --data-dir (embedded store) or --api (node), not both", field="api"
        )


def _embedded(data_dir: Path, *, create: bool, ann_build: bool = False) -> Engine:
    if not create and not store_exists(data_dir):
        raise NotFoundError(
            f"no DWBase store in {data_dir} (no {STORE_FILE}); check --data-dir, or "
            "create one with `dwbase --data-dir DIR remember ...`",
            path=str(data_dir),
        )
    import dwbase

    from ..security.keys import default_key_provider

    # As for the node: a new store is encrypted under DWBASE_STORAGE_ENCRYPTION_KEY (and an
    # existing one must be); an encrypted store finds its keys in DWBASE_KEY_<ID> variables
    # or the DWBASE_STORAGE_KEY_DIR / DWBASE_KEY_DIR files either way.
    return dwbase.open(
        data_dir,
        encryption_key=os.environ.get("DWBASE_STORAGE_ENCRYPTION_KEY") or None,
        key_provider=default_key_provider(os.environ.get("DWBASE_STORAGE_KEY_DIR") or None),
        # a short command ends before a graph it built could serve (a saved one is used)
        ann_build=ann_build,
    )


def _client(url: str, token: str | None) -> Backend:
    try:
        from ..client import Client
    except ImportError as exc:
        raise UnavailableError(
            f"the HTTP client is not available in this installation ({exc})"
        ) from exc
    return Client(url, token=token)

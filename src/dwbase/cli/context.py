"""Where a command's store comes from: an embedded data dir or a node's HTTP API."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..errors import InvalidInputError, NotFoundError, UnavailableError

STORE_FILE = "dwbase.sqlite3"

# The engine (embedded) and ``dwbase.Client`` (a node) offer the same methods by contract
# (DESIGN §3.1); the CLI calls them by name, so a backend is typed loosely here.
Backend = Any


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
def open_backend(ctx: typer.Context, *, create: bool = False) -> Iterator[Backend]:
    """Open the embedded store or connect to the node, and close it afterwards.

    ``create`` lets a write command make a new store; read commands refuse a directory that
    holds no store, so a typo in ``--data-dir`` is reported instead of creating a new store.
    """
    st = state(ctx)
    if st.api and st.data_dir is not None:
        raise InvalidInputError(
            "give --data-dir (embedded store) or --api (node), not both", field="api"
        )
    if st.api:
        backend = _client(st.api, st.token)
    elif st.data_dir is not None:
        if not create and not store_exists(st.data_dir):
            raise NotFoundError(
                f"no DWBase store in {st.data_dir} (no {STORE_FILE}); check --data-dir, or "
                "create one with `dwbase --data-dir DIR remember ...`",
                path=str(st.data_dir),
            )
        import dwbase

        backend = dwbase.open(st.data_dir)
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


def _client(url: str, token: str | None) -> Backend:
    try:
        module = importlib.import_module("dwbase.client")
    except ImportError as exc:
        raise UnavailableError(
            f"the HTTP client is not available in this installation ({exc})"
        ) from exc
    return module.Client(url, token=token)

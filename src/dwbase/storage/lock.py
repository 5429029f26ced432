"""Who has a store open: a shared lock each opener holds, an exclusive one to replace the store.

Every process that opens a data directory (the node, its ask workers' parent, the CLI, a
notebook) holds a *shared* ``flock`` on ``<data_dir>/dwbase.lock`` until it closes the store.
Any number of processes may hold it together: SQLite serialises their writes, and the engine
reads the per-world chain head inside each write transaction.

Operations that *replace* the store's files (``backup restore --force``, ``compact``) need the
lock *exclusively*: while any other process holds the store open they are refused with a
:class:`~dwbase.errors.ConflictError` that names the holders (their pids and command lines,
read from ``/proc/locks`` where the platform has it).

``flock`` locks belong to an open file, so a process that dies (even by ``kill -9``) releases
its lock at once; nothing stale is left behind. Where ``fcntl`` does not exist (Windows, the
WASI component) locking is skipped: those builds run a single process per store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import ConflictError

try:  # pragma: no cover - depends on the platform
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "dwbase.lock"


def lock_path(data_dir: str) -> str:
    return os.path.join(data_dir, LOCK_FILE)


def holders(path: str) -> list[str]:
    """Processes other than this one holding a lock on ``path``: ``"pid 123 (dwbase node)"``.

    Read from ``/proc/locks``; an empty list where that file does not exist.
    """
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    me = os.getpid()
    out: list[str] = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  READ 1234 08:01:5678 0 EOF" (a "->" entry is a waiter)
        if len(parts) < 6 or parts[1] == "->":
            continue
        try:
            pid = int(parts[4])
            inode = int(parts[5].rsplit(":", 1)[1])
        except (ValueError, IndexError):
            continue
        if inode != st.st_ino or pid == me:
            continue
        out.append(f"pid {pid} ({_cmdline(pid)})")
    return sorted(set(out))


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return "unknown command"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    text = " ".join(os.path.basename(w) if i == 0 else w for i, w in enumerate(words))
    return text[:120] or "unknown command"


class StoreLock:
    """The lock one open store holds: shared while open, exclusive for a moment to replace it."""

    def __init__(self, data_dir: str) -> None:
        self.path = lock_path(data_dir)
        self._fd: int | None = None

    def acquire_shared(self) -> None:
        if fcntl is None or self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Blocks only while another process replaces the store (restore, compact).
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold the store alone for ``what``; ``ConflictError`` if another process has it open."""
        if fcntl is None:
            yield
            return
        fd = self._fd
        own = fd is None
        if fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not own:  # converting our shared lock failed: keep holding it shared
                    fcntl.flock(fd, fcntl.LOCK_SH)
                raise _busy(self.path, what) from None
            try:
                yield
            finally:
                if not own:
                    fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            if own:
                os.close(fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file releases its flock


def _busy(path: str, what: str) -> ConflictError:
    who = holders(path)
    named = ", ".join(who) if who else "another process"
    return ConflictError(
        f"cannot {what}: the store in {os.path.dirname(path) or '.'} is open in {named}; "
        "stop it (the node, CLI or notebook using this data dir) and try again",
        holders=who,
    )


@contextlib.contextmanager
def exclusive_store(data_dir: str, what: str = "replace the store") -> Iterator[None]:
    """Hold ``data_dir``'s store alone (no other process may have it open) for ``what``."""
    os.makedirs(data_dir, exist_ok=True)
    with StoreLock(data_dir).exclusive(what):
        yield

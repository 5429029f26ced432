"""Backups: a consistent online snapshot of a store as tar + zstd, and a validated restore.

``create_backup`` copies the SQLite database with SQLite's online backup API in one step, so
the copy is one consistent read transaction even while a node keeps writing (WAL readers never
block writers). The archive holds ``manifest.json`` first (format version, per-file SHA-256
and size, index metadata, counts), then the files under ``data/``.

``restore_backup`` refuses a non-empty target without ``force`` before it reads anything, then
extracts the whole archive next to the target, checks every checksum, runs SQLite's integrity
check and DWBase's own record/hash-chain check, and only then moves the result into place.

>>> import os, tempfile, dwbase
>>> tmp = tempfile.mkdtemp()
>>> with dwbase.open(os.path.join(tmp, "src")) as db:
...     _ = db.remember("demo", "a", "observation", {"text": "hi"})
>>> m = create_backup(os.path.join(tmp, "src"), os.path.join(tmp, "b.tar.zst"))
>>> r = restore_backup(os.path.join(tmp, "b.tar.zst"), os.path.join(tmp, "dst"))
>>> (m["counts"]["atoms"], r["check"]["ok"])
(1, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import zstandard

from ..errors import ConflictError, InvalidInputError, NotFoundError, StorageError
from ..indexes import REEMBED_FILE

FORMAT = "dwbase-backup"
FORMAT_VERSION = 1
STORE_FILE = "dwbase.sqlite3"
MANIFEST = "manifest.json"
# Small files of a node's data dir that travel with the store when present.
EXTRA_FILES = ("tokens.json", "swarm.json")
# SQLite files beside the store, snapshotted the same way when present: the vectors of older
# atoms re-embedded after an embedder change (a restore would otherwise embed them again).
EXTRA_DATABASES = (REEMBED_FILE,)
_CHUNK = 1 << 20

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def _noop(phase: str, done: int, total: int) -> None:
    del phase, done, total


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _snapshot(src: Path, dst: Path) -> None:
    """Copy ``src`` with the online backup API in a single step (one read transaction)."""
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {src} for backup: {exc}") from exc
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target, pages=-1)
            # The copy stands alone: no WAL beside it inside the archive.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise StorageError(f"online backup of {src} failed: {exc}") from exc
    finally:
        source.close()


def _store_metadata(db_path: Path) -> dict[str, Any]:
    """Counts and index metadata read from a snapshot (never from the live store)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        worlds = [r[0] for r in conn.execute("SELECT DISTINCT world FROM atoms ORDER BY world")]
        per_world: dict[str, dict[str, Any]] = {}
        for world, atoms, vectors in conn.execute(
            "SELECT a.world, count(*), count(v.seq) FROM atoms a "
            "LEFT JOIN vectors v ON v.seq=a.seq GROUP BY a.world"
        ):
            per_world[world] = {
                "atoms": int(atoms),
                "vectors": int(vectors),
                "dim": int(meta["dim:" + world]) if ("dim:" + world) in meta else None,
            }
        counts = {
            "atoms": int(conn.execute("SELECT count(*) FROM atoms").fetchone()[0]),
            "quarantined": int(
                conn.execute("SELECT count(*) FROM atoms WHERE quarantine IS NOT NULL").fetchone()[
                    0
                ]
            ),
            "tombstones": int(conn.execute("SELECT count(*) FROM tombstones").fetchone()[0]),
            "worlds": len(worlds),
            "max_seq": int(
                conn.execute(
                    "SELECT max(m) FROM (SELECT max(seq) m FROM atoms "
                    "UNION ALL SELECT max(seq) FROM tombstones)"
                ).fetchone()[0]
                or 0
            ),
        }
        index = {
            "schema_version": meta.get("schema_version"),
            "embedder": meta.get("embedder"),
            "text_rows": int(conn.execute("SELECT count(*) FROM fts").fetchone()[0]),
            "worlds": per_world,
        }
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the snapshot's metadata: {exc}") from exc
    finally:
        conn.close()
    return {"counts": counts, "index": index}


def create_backup(
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    level: int = 10,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Snapshot the store in ``data_dir`` (a node may run) into ``out``; returns the manifest."""
    src_dir = Path(data_dir)
    src = src_dir / STORE_FILE
    if not src.is_file():
        raise NotFoundError(f"no DWBase store in {src_dir} (no {STORE_FILE})", path=str(src_dir))
    target = Path(out)
    if target.exists() and not force:
        raise ConflictError(f"{target} exists; pass --force to overwrite it", path=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    from .. import __version__

    with tempfile.TemporaryDirectory(prefix=".dwbase-backup-", dir=target.parent) as tmp:
        work = Path(tmp)
        size = src.stat().st_size
        progress("snapshot", 0, size)
        _snapshot(src, work / STORE_FILE)
        progress("snapshot", size, size)
        names = [STORE_FILE]
        for extra in EXTRA_DATABASES:
            if (src_dir / extra).is_file():
                _snapshot(src_dir / extra, work / extra)
                names.append(extra)
        for extra in EXTRA_FILES:
            if (src_dir / extra).is_file():
                shutil.copy2(src_dir / extra, work / extra)
                names.append(extra)
        files: dict[str, dict[str, Any]] = {
            name: {"sha256": _sha256_file(work / name), "size": (work / name).stat().st_size}
            for name in names
        }
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dwbase_version": __version__,
            "source": str(src_dir.resolve()),
            "files": files,
            **_store_metadata(work / STORE_FILE),
        }
        partial = work / "archive.partial"
        total = sum(int(f["size"]) for f in files.values())
        with partial.open("wb") as raw:
            cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
            with (
                cctx.stream_writer(raw, closefd=False) as zw,
                tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
                info = tarfile.TarInfo(MANIFEST)
                info.size = len(body)
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(body))
                done = 0
                for name in names:
                    path = work / name
                    info = tarfile.TarInfo(f"data/{name}")
                    info.size = path.stat().st_size
                    info.mtime = int(path.stat().st_mtime)
                    info.mode = 0o600
                    with path.open("rb") as fh:
                        tar.addfile(
                            info, _Counting(fh, lambda n: progress("write", n, total), done)
                        )
                    done += info.size
            raw.flush()
            os.fsync(raw.fileno())
        progress("write", total, total)
        os.replace(partial, target)
    return manifest


class _Counting(io.RawIOBase):
    """A reader that reports how many bytes were read so far (for progress bars)."""

    def __init__(self, fh: IO[bytes], report: Callable[[int], None], start: int) -> None:
        self._fh = fh
        self._report = report
        self._done = start

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._done += len(data)
        self._report(self._done)
        return data


def _members(archive: Path) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    try:
        raw = archive.open("rb")
    except OSError as exc:
        raise NotFoundError(f"cannot open backup {archive}: {exc}", path=str(archive)) from exc
    with raw:
        dctx = zstandard.ZstdDecompressor()
        with dctx.stream_reader(raw) as zr, tarfile.open(fileobj=zr, mode="r|") as tar:
            for member in tar:
                yield member, tar.extractfile(member)


def _corrupt(archive: Path, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"backup {archive} is not usable: {why}; nothing was restored", path=str(archive)
    )


def _check_manifest(archive: Path, manifest: Any) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _corrupt(archive, "manifest.json is not a DWBase backup manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _corrupt(
            archive,
            f"format version {manifest.get('format_version')!r} is not {FORMAT_VERSION} "
            "(made by a different DWBase)",
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or STORE_FILE not in files:
        raise _corrupt(archive, f"the manifest lists no {STORE_FILE}")
    for name, entry in files.items():
        ok_name = name in (STORE_FILE, *EXTRA_DATABASES, *EXTRA_FILES)
        if not ok_name or not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise _corrupt(archive, f"the manifest entry {name!r} is not valid")
    return manifest


def extract_verified(
    archive: str | os.PathLike[str], dest: str | os.PathLike[str]
) -> dict[str, Any]:
    """Extract ``archive`` into the empty directory ``dest``, verifying everything.

    Checks the zstd frame checksum, the tar structure, that the manifest comes first and lists
    exactly the files present, every file's size and SHA-256, SQLite's integrity check and
    DWBase's record checksums and hash chains. Raises ``InvalidInputError`` on any problem.
    """
    path = Path(archive)
    out = Path(dest)
    manifest: dict[str, Any] | None = None
    seen: set[str] = set()
    try:
        for member, fh in _members(path):
            if manifest is None:
                if member.name != MANIFEST or fh is None:
                    raise _corrupt(path, "manifest.json is not the first entry")
                try:
                    manifest = _check_manifest(path, json.loads(fh.read()))
                except ValueError as exc:
                    raise _corrupt(path, f"manifest.json is not JSON ({exc})") from exc
                continue
            name = member.name.removeprefix("data/")
            files = manifest["files"]
            if not member.name.startswith("data/") or name not in files or not member.isfile():
                raise _corrupt(path, f"unexpected entry {member.name!r}")
            if name in seen:
                raise _corrupt(path, f"entry {member.name!r} appears twice")
            seen.add(name)
            if fh is None:
                raise _corrupt(path, f"entry {member.name!r} has no data")
            h = hashlib.sha256()
            size = 0
            with (out / name).open("wb") as dst:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
            entry = files[name]
            if size != entry.get("size") or h.hexdigest() != entry["sha256"]:
                raise _corrupt(path, f"{name} does not match its checksum in the manifest")
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise _corrupt(path, f"cannot be read ({exc})") from exc
    if manifest is None:
        raise _corrupt(path, "it is empty")
    missing = sorted(set(manifest["files"]) - seen)
    if missing:
        raise _corrupt(path, f"missing {', '.join(missing)}")
    for extra in EXTRA_DATABASES:
        if extra in seen:
            _integrity(path, out / extra)
    check = _verify_store(path, out / STORE_FILE)
    return {"manifest": manifest, "check": check}


def _integrity(archive: Path, db_path: Path) -> None:
    try:
        conn = sqlite3.connect(db_path)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _corrupt(archive, f"{db_path.name} is not a SQLite database ({exc})") from exc
    if result != "ok":
        raise _corrupt(archive, f"SQLite integrity check of {db_path.name}: {result}")


def _verify_store(archive: Path, db_path: Path) -> dict[str, Any]:
    _integrity(archive, db_path)
    from ..storage.sqlite import SQLiteStorage

    try:
        storage = SQLiteStorage(str(db_path))
    except StorageError as exc:
        raise _corrupt(archive, exc.message) from exc
    try:
        report = storage.check()
    finally:
        storage.close()
    if not report.ok:
        raise _corrupt(archive, "store check failed: " + "; ".join(report.problems[:5]))
    return {"ok": True, "records": report.records, "worlds": report.worlds, "problems": []}


def verify_backup(archive: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate a whole archive without restoring it (extracts into a temporary directory)."""
    with tempfile.TemporaryDirectory(prefix=".dwbase-verify-") as tmp:
        return extract_verified(archive, tmp)


def _is_empty(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def restore_backup(
    archive: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Restore ``archive`` into ``data_dir``; refuses a non-empty target unless ``force``.

    Nothing in ``data_dir`` changes unless the whole archive is valid. With ``force`` the old
    contents are replaced (stop any node using ``data_dir`` first).
    """
    target = Path(data_dir)
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target} exists and is not a directory", path=str(target))
    if not _is_empty(target) and not force:
        raise ConflictError(
            f"{target} is not empty; pass --force to replace its contents", path=str(target)
        )
    if not Path(archive).is_file():
        raise NotFoundError(f"no backup archive at {archive}", path=str(archive))
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".dwbase-restore-", dir=parent))
    try:
        result = extract_verified(archive, staging)
        for leftover in ("-wal", "-shm"):
            for db in (STORE_FILE, *EXTRA_DATABASES):
                with contextlib.suppress(FileNotFoundError):
                    (staging / (db + leftover)).unlink()
        old: Path | None = None
        if target.exists():
            old = parent / f".dwbase-old-{os.getpid()}-{time.time_ns()}"
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result["target"] = str(target)
    return result

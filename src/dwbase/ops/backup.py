"""Backups: a consistent online snapshot of a store as tar + zstd, and a validated restore.

``create_backup`` copies the SQLite database with SQLite's online backup API in one step, so
the copy is one consistent read transaction even while a node keeps writing (WAL readers never
block writers). The archive holds ``manifest.json`` first (format version, per-file SHA-256
and size, index metadata, counts), then the files under ``data/``.

``restore_backup`` refuses a non-empty target without ``force`` before it reads anything, then
extracts the whole archive next to the target, checks every checksum, runs DWBase's full
``storage check``, compares the restored store's counts and each world's head with the
manifest, and only then moves the result into place, while no other process has the store
open (:func:`~dwbase.storage.lock.exclusive_store`).

Extraction is bounded: the manifest may be at most ``MANIFEST_MAX`` bytes, each file must be
exactly the size the manifest declares, the declared total must fit the free disk space (and
``max_bytes`` when given), and the decompressed stream may not run past the declared sizes, so
a decompression bomb is refused before it writes more than it declared. Restored files are
private (mode 0600): ``tokens.json`` holds token hashes and the store holds every memory.

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
from ..security.keys import KeyProvider
from ..storage.crypto import KEYS_DIR
from ..storage.lock import LOCK_FILE, exclusive_store
from ..storage.sqlite_schema import STORE_MARKER
from .backup_mac import seal_manifest, verify_manifest

FORMAT = "dwbase-backup"
FORMAT_VERSION = 1
STORE_FILE = "dwbase.sqlite3"
MANIFEST = "manifest.json"
# Small files of a node's data dir that travel with the store when present (auth.json: the
# node has required tokens, so the restored node keeps requiring them).
EXTRA_FILES = ("tokens.json", "auth.json", "swarm.json")
SWARM_KEY = "swarm.key"  # the node's private key (dwbase.swarm.identity): kept, never copied
# SQLite files beside the store, snapshotted the same way when present: the vectors of older
# atoms re-embedded after an embedder change (a restore would otherwise embed them again).
EXTRA_DATABASES = (REEMBED_FILE,)
_CHUNK = 1 << 20
MANIFEST_MAX = 1 << 20  # bytes a manifest may have
# What a tar stream adds around its files: headers, pax records, padding, end blocks.
_TAR_SLACK = 64 << 10
_TAR_SLACK_PER_FILE = 4 << 10

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
        heads = {
            str(world): {"seq": int(seq), "chain": bytes(chain).hex(), "count": int(n)}
            for world, seq, chain, n in conn.execute(
                "SELECT world, max(seq), chain, count(*) FROM (SELECT world, seq, chain FROM "
                "atoms UNION ALL SELECT world, seq, chain FROM tombstones) GROUP BY world"
            )
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
    return {"counts": counts, "index": index, "heads": heads}


def create_backup(
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    level: int = 10,
    progress: Progress = _noop,
    key_provider: KeyProvider | None = None,
) -> dict[str, Any]:
    """Snapshot the store in ``data_dir`` (a node may run) into ``out``; returns the manifest.

    The backup of an encrypted store holds its ciphertext as it is on disk, never a key (nor
    the subject keys of ``keys/``), and its manifest carries a MAC under a key derived from
    the store key (``key_provider``, default: ``DWBASE_KEY_<ID>``), see :mod:`.backup_mac`."""
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
        seal_manifest(manifest, work / STORE_FILE, key_provider)
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


class _TooLarge(Exception):
    """The decompressed stream ran past what its manifest declared."""


class _Capped(io.RawIOBase):
    """The decompressed archive, refusing to give more than ``limit`` bytes in all."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self.limit = limit
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        room = self.limit - self.consumed
        want = room + 1 if size < 0 else min(size, room + 1)
        data = self._inner.read(want)
        self.consumed += len(data)
        if self.consumed > self.limit:
            raise _TooLarge(self.limit)
        return data


@contextlib.contextmanager
def _opened(archive: Path) -> Iterator[tuple[_Capped, tarfile.TarFile]]:
    try:
        raw = archive.open("rb")
    except OSError as exc:
        raise NotFoundError(f"cannot open backup {archive}: {exc}", path=str(archive)) from exc
    with raw:
        dctx = zstandard.ZstdDecompressor()
        with dctx.stream_reader(raw) as zr:
            capped = _Capped(zr, MANIFEST_MAX + _TAR_SLACK)  # raised once the manifest is read
            with tarfile.open(fileobj=capped, mode="r|") as tar:
                yield capped, tar


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
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _corrupt(archive, f"the manifest gives {name!r} no valid size")
    if not isinstance(manifest.get("counts"), dict):
        raise _corrupt(archive, "the manifest has no counts")
    return manifest


def _room(archive: Path, out: Path, files: dict[str, Any], max_bytes: int | None) -> int:
    """The bytes the manifest declares, refused at once if they cannot or may not be written."""
    total = sum(int(entry["size"]) for entry in files.values())
    if max_bytes is not None and total > max_bytes:
        raise _corrupt(
            archive, f"its files declare {total} bytes, more than the {max_bytes} allowed"
        )
    free = shutil.disk_usage(out).free
    if total > free:
        raise _corrupt(
            archive, f"its files declare {total} bytes, more than the {free} bytes free in {out}"
        )
    return total


def extract_verified(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    key_provider: KeyProvider | None = None,
) -> dict[str, Any]:
    """Extract ``archive`` into the empty directory ``dest``, verifying everything.

    Checks the zstd frame checksum, the tar structure, that the manifest comes first and lists
    exactly the files present, every file's size and SHA-256 (never writing more than the
    manifest declares), DWBase's full store check, and the store's counts and world heads
    against the manifest. Raises ``InvalidInputError`` on any problem.
    """
    path = Path(archive)
    out = Path(dest)
    manifest: dict[str, Any] | None = None
    seen: set[str] = set()
    try:
        with _opened(path) as (capped, tar):
            for member in tar:
                if manifest is None:
                    manifest = _read_manifest(path, tar, member)
                    files = manifest["files"]
                    total = _room(path, out, files, max_bytes)
                    capped.limit = (
                        capped.consumed + total + _TAR_SLACK + _TAR_SLACK_PER_FILE * len(files)
                    )
                    continue
                name = member.name.removeprefix("data/")
                if not member.name.startswith("data/") or name not in files or not member.isfile():
                    raise _corrupt(path, f"unexpected entry {member.name!r}")
                if name in seen:
                    raise _corrupt(path, f"entry {member.name!r} appears twice")
                seen.add(name)
                _extract(path, tar, member, files[name], out / name)
    except _TooLarge as exc:
        raise _corrupt(
            path, f"it inflates past the {exc.args[0]} bytes its manifest allows (a bomb?)"
        ) from None
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
    verify_manifest(path, manifest, out / STORE_FILE, key_provider)
    check = _verify_store(path, out / STORE_FILE, key_provider)
    _compare_with_manifest(path, manifest, out / STORE_FILE)
    return {"manifest": manifest, "check": check}


def _read_manifest(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    if member.name != MANIFEST or not member.isfile():
        raise _corrupt(path, "manifest.json is not the first entry")
    if member.size > MANIFEST_MAX:
        raise _corrupt(
            path, f"manifest.json is {member.size} bytes, more than the {MANIFEST_MAX} allowed"
        )
    fh = tar.extractfile(member)
    if fh is None:
        raise _corrupt(path, "manifest.json has no data")
    try:
        return _check_manifest(path, json.loads(fh.read(MANIFEST_MAX)))
    except ValueError as exc:
        raise _corrupt(path, f"manifest.json is not JSON ({exc})") from exc


def _extract(
    path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, entry: dict[str, Any], to: Path
) -> None:
    """Write one file (mode 0600) of exactly its declared size, checking its SHA-256."""
    declared = int(entry["size"])
    if member.size != declared:
        raise _corrupt(
            path, f"entry {member.name!r} is {member.size} bytes, the manifest says {declared}"
        )
    fh = tar.extractfile(member)
    if fh is None:
        raise _corrupt(path, f"entry {member.name!r} has no data")
    h = hashlib.sha256()
    size = 0
    fd = os.open(to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as dst:
        while chunk := fh.read(min(_CHUNK, declared - size + 1)):
            size += len(chunk)
            if size > declared:
                raise _corrupt(path, f"entry {member.name!r} is longer than its manifest says")
            h.update(chunk)
            dst.write(chunk)
    if size != declared or h.hexdigest() != entry["sha256"]:
        raise _corrupt(path, f"{to.name} does not match its checksum in the manifest")


def _compare_with_manifest(archive: Path, manifest: dict[str, Any], db_path: Path) -> None:
    """The restored store holds what the manifest says was backed up: counts and heads.

    A store with atoms removed (or replaced) after the backup was made, and a manifest whose
    checksums were fixed to match, passes every file check; this does not let it through.
    """
    got = _store_metadata(db_path)
    for key, want in sorted(manifest["counts"].items()):
        have = got["counts"].get(key)
        if have != want:
            raise _corrupt(
                archive, f"the store holds {have} {key.replace('_', ' ')}, its manifest says {want}"
            )
    heads = manifest.get("heads")  # backups made before heads were recorded have none
    if isinstance(heads, dict):
        for world in sorted(set(heads) | set(got["heads"])):
            have, want = got["heads"].get(world), heads.get(world)
            if have != want:
                raise _corrupt(
                    archive,
                    f"world {world!r} ends at head {_head(have)}, its manifest says {_head(want)}",
                )


def _head(head: Any) -> str:
    if not isinstance(head, dict):
        return "none"
    return f"seq {head.get('seq')} ({str(head.get('chain'))[:12]}…, {head.get('count')} records)"


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


def _verify_store(
    archive: Path, db_path: Path, key_provider: KeyProvider | None = None
) -> dict[str, Any]:
    _integrity(archive, db_path)
    from ..storage.sqlite import SQLiteStorage

    try:
        # a private copy: no one else
        storage = SQLiteStorage(str(db_path), lock=False, key_provider=key_provider)
    except StorageError as exc:
        raise _corrupt(archive, exc.message) from exc
    try:
        report = storage.check()
    finally:
        storage.close()
    if not report.ok:
        raise _corrupt(archive, "store check failed: " + "; ".join(report.problems[:5]))
    return {"ok": True, "records": report.records, "worlds": report.worlds, "problems": []}


def verify_backup(
    archive: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    key_provider: KeyProvider | None = None,
) -> dict[str, Any]:
    """Validate a whole archive without restoring it (extracts into a temporary directory)."""
    with tempfile.TemporaryDirectory(prefix=".dwbase-verify-") as tmp:
        return extract_verified(archive, tmp, max_bytes=max_bytes, key_provider=key_provider)


def _is_empty(path: Path) -> bool:
    # The lock file alone is what an opened and removed store leaves: nothing to lose.
    return not path.exists() or (path.is_dir() and all(p.name == LOCK_FILE for p in path.iterdir()))


def restore_backup(
    archive: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    max_bytes: int | None = None,
    key_provider: KeyProvider | None = None,
) -> dict[str, Any]:
    """Restore ``archive`` into ``data_dir``; refuses a non-empty target unless ``force``.

    Nothing in ``data_dir`` changes unless the whole archive is valid. With ``force`` the old
    contents are replaced, and only while no other process (a node, the CLI, a notebook) has
    the store open: otherwise ``ConflictError`` names the holders.
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
        result = extract_verified(archive, staging, max_bytes=max_bytes, key_provider=key_provider)
        for leftover in ("-wal", "-shm"):
            for db in (STORE_FILE, *EXTRA_DATABASES):
                with contextlib.suppress(FileNotFoundError):
                    (staging / (db + leftover)).unlink()
        _write_marker(staging)
        with exclusive_store(str(target), "restore a backup over it"):
            if not _is_empty(target) and not force:  # filled while we were verifying
                raise ConflictError(
                    f"{target} is not empty; pass --force to replace its contents",
                    path=str(target),
                )
            _replace_contents(target, staging, parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result["target"] = str(target)
    return result


def _write_marker(staging: Path) -> None:
    """The marker a data dir keeps once it holds a store (so a lost store file is noticed)."""
    body = json.dumps({"store": "dwbase", "file": STORE_FILE}) + "\n"
    (staging / STORE_MARKER).write_text(body, encoding="utf-8")


def _replace_contents(target: Path, staging: Path, parent: Path) -> None:
    """Move ``target``'s files aside and the staged ones in; the lock file stays in place,
    so a process waiting on it sees the restored store, and so do the subject keys of an
    encrypted store (``keys/``: never in a backup, so an erased subject stays erased) and the
    swarm node key (``swarm.key``: a private key, never in a backup; the node keeps the
    identity its peers trust)."""
    old = Path(tempfile.mkdtemp(prefix=".dwbase-old-", dir=parent))
    try:
        for entry in list(target.iterdir()):
            if entry.name not in (LOCK_FILE, KEYS_DIR, SWARM_KEY):
                entry.rename(old / entry.name)
        for entry in list(staging.iterdir()):
            if entry.name not in (LOCK_FILE, KEYS_DIR, SWARM_KEY):
                entry.rename(target / entry.name)
    except OSError as exc:
        raise StorageError(
            f"restore stopped half way ({exc}); the previous contents of {target} are in {old}",
            path=str(old),
        ) from exc
    shutil.rmtree(old, ignore_errors=True)

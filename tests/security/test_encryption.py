"""Encryption at rest: ciphertext on disk, key checks at open, rotation, erasure by subject."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import dwbase
from dwbase.errors import EncryptionKeyError, NotFoundError, StorageError
from dwbase.security.keys import EnvKeyProvider, KeyFileProvider
from dwbase.storage.base import vector_bytes
from dwbase.vector.exact import pack_unit

from .scan import K1, K2, WORDS, keys, rewrite_backup, scan_tree

DIM = 256


def _open(path: Path, provider: EnvKeyProvider, key: str | None = "k1") -> dwbase.Engine:
    return dwbase.open(path, encryption_key=key, key_provider=provider)


def test_encrypted_store_round_trips_with_ciphertext_on_disk(tmp_path: Path) -> None:
    provider = keys(k1=K1)
    with _open(tmp_path / "s", provider) as db:
        aid = db.remember("demo", "a", "observation", {"text": "the quokka ate 12 apples"})
    with _open(tmp_path / "s", provider) as db:
        assert db.get(aid).payload == {"text": "the quokka ate 12 apples"}
        assert [h.atom.id for h in db.ask("demo", "quokka").hits] == [aid]
        assert db.check().ok
    conn = sqlite3.connect(tmp_path / "s" / "dwbase.sqlite3")
    payload, text = conn.execute("SELECT payload_json, text FROM atoms").fetchone()
    (indexed,) = conn.execute("SELECT text FROM fts").fetchone()
    conn.close()
    assert isinstance(payload, bytes) and b"quokka" not in payload
    assert isinstance(text, bytes) and b"quokka" not in text
    assert "quokka" not in indexed and indexed.startswith("h")


def test_wrong_key_is_a_storage_error_at_open(tmp_path: Path) -> None:
    with _open(tmp_path / "s", keys(k1=K1)) as db:
        db.remember("demo", "a", "observation", {"text": "hello"})
    with pytest.raises(StorageError) as err:
        _open(tmp_path / "s", keys(k1=K2))
    assert err.value.code == "encryption_key"
    assert err.value.details["reason"] == "wrong"
    assert "not the key this store was encrypted with" in err.value.message


def test_missing_key_fails_at_open_naming_where_it_was_looked_for(tmp_path: Path) -> None:
    with _open(tmp_path / "s", keys(k1=K1)) as db:
        db.remember("demo", "a", "observation", {"text": "hello"})
    # Without asking for encryption: the store says it is encrypted, and the key is missing.
    with pytest.raises(EncryptionKeyError) as err:
        dwbase.open(tmp_path / "s", key_provider=keys())
    assert err.value.details["reason"] == "missing"
    assert "DWBASE_KEY_K1" in err.value.message
    # A key that is not 256 bits is refused as such.
    with pytest.raises(EncryptionKeyError) as bad:
        _open(tmp_path / "s", keys(k1="abcd"))
    assert bad.value.details["reason"] == "invalid"


def test_a_plain_store_refuses_an_encryption_key_and_a_new_store_needs_its_key(
    tmp_path: Path,
) -> None:
    with dwbase.open(tmp_path / "plain") as db:
        db.remember("demo", "a", "observation", {"text": "hello"})
    with pytest.raises(EncryptionKeyError) as err:
        _open(tmp_path / "plain", keys(k1=K1))
    assert err.value.details["reason"] == "plain_store"
    with pytest.raises(EncryptionKeyError):
        _open(tmp_path / "new", keys())
    assert not (tmp_path / "new" / "dwbase.sqlite3").exists()


def test_keys_come_from_key_files_too(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "disk-1.key").write_text(K1 + "\n")
    provider = KeyFileProvider(tmp_path / "keys")
    with dwbase.open(tmp_path / "s", encryption_key="disk-1", key_provider=provider) as db:
        aid = db.remember("demo", "a", "observation", {"text": "hello"})
    with dwbase.open(tmp_path / "s", key_provider=provider) as db:
        assert db.get(aid).payload == {"text": "hello"}


def _fill(db: dwbase.Engine, rng: random.Random) -> list[list[float]]:
    vectors = [[rng.uniform(-1, 1) for _ in range(DIM)] for _ in range(3)]
    for i, word in enumerate(WORDS):
        db.remember(
            "scan",
            "agent",
            "observation",
            {"text": f"note about {word}", "n": i},
            vector=vectors[i % 3],
            labels=["subject:bob"] if i == 0 else [],
        )
    db.remember_batch(
        [
            {"world": "scan2", "worker": "w", "kind": "observation", "payload": {"text": w}}
            for w in WORDS
        ]
    )
    return vectors


def _needles(vectors: list[list[float]]) -> list[bytes]:
    out = [w.encode() for w in WORDS]
    for v in vectors:
        out.append(vector_bytes(v)[:24])  # the caller's float64 vector
        out.append(pack_unit(v)[:16])  # the float32 unit vector the index searches
    return out


@pytest.mark.parametrize("encrypted", [True, False])
def test_no_known_word_or_vector_in_any_file_or_backup_when_encrypted(
    tmp_path: Path, encrypted: bool
) -> None:
    from dwbase.ops.backup import create_backup

    provider = keys(k1=K1)
    store = tmp_path / "store"
    db = dwbase.open(store, encryption_key="k1" if encrypted else None, key_provider=provider)
    try:
        vectors = _fill(db, random.Random(7))
        needles = _needles(vectors)
        assert db.ask("scan", WORDS[1]).hits
        open_hits = scan_tree(store, needles)  # while open: the WAL holds the newest pages
        create_backup(store, tmp_path / "b.tar.zst", key_provider=provider)
    finally:
        db.close()
    closed_hits = scan_tree(store, needles)
    backup_hits = scan_tree(tmp_path / "b.tar.zst", needles)
    if encrypted:
        assert (open_hits, closed_hits, backup_hits) == ([], [], [])
    else:  # the control: the same scan finds the words, so it can fail
        assert open_hits and closed_hits and backup_hits


def test_rotation_under_concurrent_reads_and_writes(tmp_path: Path) -> None:
    both = keys(k1=K1, k2=K2)
    db = _open(tmp_path / "s", both)
    try:
        ids = db.remember_batch(
            [
                {"world": "r", "worker": "w", "kind": "observation", "payload": {"text": f"t{i}"}}
                for i in range(400)
            ]
        )
        stop = threading.Event()
        failures: list[BaseException] = []
        written: list[str] = []
        reads = [0]

        def reader() -> None:
            rng = random.Random(1)
            try:
                while not stop.is_set():
                    i = rng.randrange(len(ids))
                    assert db.get(ids[i]).payload == {"text": f"t{i}"}
                    assert db.ask("r", f"t{i}").hits[0].atom.id == ids[i]
                    reads[0] += 1
            except BaseException as exc:
                failures.append(exc)

        def writer() -> None:
            try:
                while not stop.is_set():
                    written.append(db.remember("r", "w", "observation", {"text": "during"}))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        steps: list[tuple[int, int]] = []
        try:
            result = db.rotate_key("k2", batch=40, progress=lambda d, t: steps.append((d, t)))
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert reads[0] > 0 and written
        assert result["retired_keys"] == ["k1"] and result["reencrypted"] >= 400
        assert len(steps) > 5 and steps[-1][0] == steps[-1][1]
    finally:
        db.close()
    # The old key can go: every record opens with the new one alone.
    with _open(tmp_path / "s", keys(k2=K2), key="k2") as db:
        assert len(db.replay("r", limit=10_000)) == 400 + len(written)
        assert db.check().ok
    conn = sqlite3.connect(tmp_path / "s" / "dwbase.sqlite3")
    kids = {
        bytes(p)[2 : 2 + bytes(p)[1]] for (p,) in conn.execute("SELECT payload_json FROM atoms")
    }
    conn.close()
    assert kids == {b"k2"}


def test_erasure_by_subject_skips_its_atoms_and_check_reports_them_erased(
    tmp_path: Path,
) -> None:
    from dwbase.ops.backup import create_backup, restore_backup

    provider = keys(k1=K1)
    with _open(tmp_path / "s", provider) as db:
        keep = db.remember("p", "w", "observation", {"text": "carol likes tea"})
        gone = db.remember(
            "p", "w", "observation", {"text": "alice likes tea"}, labels=["subject:alice"]
        )
        create_backup(tmp_path / "s", tmp_path / "before.tar.zst", key_provider=provider)
        assert {h.atom.id for h in db.ask("p", "tea").hits} == {keep, gone}
        report = db.erase_subject("alice")
        assert report["keys_destroyed"] == 1 and report["atoms"] == 1
        assert [h.atom.id for h in db.ask("p", "tea").hits] == [keep]
        assert [a.id for a in db.replay("p")] == [keep]
        with pytest.raises(NotFoundError):
            db.get(gone)
        check = db.check()
        assert check.ok and check.erased == 1 and check.records == 2
    # A backup made before the erasure does not bring the atom back: its key is gone.
    restore_backup(tmp_path / "before.tar.zst", tmp_path / "s", force=True, key_provider=provider)
    with _open(tmp_path / "s", provider) as db:
        assert [a.id for a in db.replay("p")] == [keep]
        assert db.check().erased == 1


def test_erasure_needs_an_encrypted_store(tmp_path: Path) -> None:
    with dwbase.open(tmp_path / "plain") as db, pytest.raises(dwbase.InvalidInputError):
        db.erase_subject("alice")


def test_a_tampered_encrypted_backup_with_recomputed_checksums_is_refused(
    tmp_path: Path,
) -> None:
    from dwbase.ops.backup import create_backup, verify_backup

    provider = keys(k1=K1)
    for name, key in (("enc", "k1"), ("plain", None)):
        with dwbase.open(tmp_path / name, encryption_key=key, key_provider=provider) as db:
            db.remember("demo", "a", "observation", {"text": "hello"})
        create_backup(tmp_path / name, tmp_path / f"{name}.tar.zst", key_provider=provider)
        rewrite_backup(tmp_path / f"{name}.tar.zst", tmp_path / f"{name}-t.tar.zst")
    # The control: a plain backup, rewritten the same way, passes every check there is.
    assert verify_backup(tmp_path / "plain-t.tar.zst")["check"]["ok"]
    assert verify_backup(tmp_path / "enc.tar.zst", key_provider=provider)["check"]["ok"]
    with pytest.raises(dwbase.InvalidInputError, match="MAC"):
        verify_backup(tmp_path / "enc-t.tar.zst", key_provider=provider)
    # Dropping the MAC from the manifest does not help either.
    rewrite_backup(tmp_path / "enc.tar.zst", tmp_path / "enc-nomac.tar.zst", drop_mac=True)
    with pytest.raises(dwbase.InvalidInputError, match="MAC"):
        verify_backup(tmp_path / "enc-nomac.tar.zst", key_provider=provider)


def test_re_embedded_vectors_of_an_encrypted_store_are_not_written_in_plain(
    tmp_path: Path,
) -> None:
    from dwbase.embed import HashingEmbedder
    from dwbase.indexes import REEMBED_FILE

    provider = keys(k1=K1)
    with _open(tmp_path / "s", provider) as db:
        db.remember("demo", "a", "observation", {"text": "quokkafruit again"})
    with dwbase.open(
        tmp_path / "s", key_provider=provider, embedder=HashingEmbedder(64), reembed=True
    ) as db:
        assert db.ask("demo", "quokkafruit").hits
    assert not (tmp_path / "s" / REEMBED_FILE).exists()


def test_an_altered_ciphertext_is_reported_as_damage_never_read_as_garbage(
    tmp_path: Path,
) -> None:
    from dwbase.storage.base import record_checksum

    provider = keys(k1=K1)
    with _open(tmp_path / "s", provider) as db:
        aid = db.remember("demo", "a", "observation", {"text": "hello there"})
        atom = db.get(aid)
    conn = sqlite3.connect(tmp_path / "s" / "dwbase.sqlite3")
    (payload, checksum) = conn.execute("SELECT payload_json, checksum FROM atoms").fetchone()
    # The stored checksum is keyed: the file alone cannot confirm a guessed record.
    assert bytes(checksum) != record_checksum(atom)
    flipped = bytearray(payload)
    flipped[-1] ^= 1
    conn.execute("UPDATE atoms SET payload_json=?", (bytes(flipped),))
    conn.commit()
    conn.close()
    with _open(tmp_path / "s", provider) as db:
        with pytest.raises(StorageError, match="does not decrypt"):
            db.get(aid)
        report = db.check()
        assert not report.ok and report.erased == 0
        assert any("does not decrypt" in p for p in report.problems)
    # Plain text put where ciphertext belongs is refused too, never served.
    conn = sqlite3.connect(tmp_path / "s" / "dwbase.sqlite3")
    conn.execute("UPDATE atoms SET payload_json=?", ('{"text": "planted"}',))
    conn.commit()
    conn.close()
    with _open(tmp_path / "s", provider) as db:
        with pytest.raises(StorageError, match="not encrypted in an encrypted store"):
            db.get(aid)
        assert not db.check().ok


def test_a_store_opened_before_a_rotation_elsewhere_writes_under_the_new_key(
    tmp_path: Path,
) -> None:
    both = keys(k1=K1, k2=K2)
    first = _open(tmp_path / "s", both)
    other = dwbase.open(tmp_path / "s", key_provider=both)  # as another process would
    try:
        old = other.remember("w", "a", "observation", {"text": "before"})
        first.rotate_key("k2")
        new = other.remember("w", "a", "observation", {"text": "after"})
        assert other.get(old).payload == {"text": "before"}
        status = other.encryption_status()
        assert status is not None and (status["key_id"], status["keys"]) == ("k2", ["k2"])
    finally:
        other.close()
        first.close()
    with _open(tmp_path / "s", keys(k2=K2), key="k2") as db:
        assert [a.id for a in db.replay("w")] == [old, new]


def test_an_in_memory_store_cannot_be_encrypted() -> None:
    with pytest.raises(dwbase.InvalidInputError, match="store on disk"):
        dwbase.open(":memory:", encryption_key="k1")


def test_an_interrupted_rotation_is_finished_by_running_it_again(tmp_path: Path) -> None:
    both = keys(k1=K1, k2=K2)
    with _open(tmp_path / "s", both) as db:
        db.remember_batch(
            [
                {"world": "r", "worker": "w", "kind": "observation", "payload": {"text": f"t{i}"}}
                for i in range(100)
            ]
        )

        def stop_half_way(done: int, total: int) -> None:
            if done >= total // 2 and done:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            db.rotate_key("k2", batch=10, progress=stop_half_way)
        status = db.encryption_status()
        assert status is not None and (status["key_id"], status["keys"]) == ("k2", ["k1", "k2"])
    # Half the records are still under k1: the store says it needs both keys.
    with pytest.raises(EncryptionKeyError, match="k1"):
        _open(tmp_path / "s", keys(k2=K2), key="k2")
    with _open(tmp_path / "s", both, key="k2") as db:
        assert len(db.replay("r", limit=1000)) == 100
        assert db.rotate_key("k2", batch=10)["reencrypted"] == 50
    with _open(tmp_path / "s", keys(k2=K2), key="k2") as db:
        assert len(db.replay("r", limit=1000)) == 100 and db.check().ok


def test_the_async_api_rotates_and_erases(tmp_path: Path) -> None:
    import asyncio

    async def main() -> tuple[Any, Any, list[str]]:
        async with dwbase.open_async(
            tmp_path / "s", encryption_key="k1", key_provider=keys(k1=K1, k2=K2)
        ) as db:
            await db.remember("p", "w", "observation", {"text": "a"}, labels=["subject:x"])
            keep = await db.remember("p", "w", "observation", {"text": "b"})
            rotated = await db.rotate_key("k2")
            erased = await db.erase_subject("x")
            return rotated, erased, [a.id for a in await db.replay("p")] + [str(keep)]

    rotated, erased, ids = asyncio.run(main())
    assert rotated["retired_keys"] == ["k1"] and erased["atoms"] == 1
    assert ids[0] == ids[1]


def test_an_erasable_world_is_erased_as_a_whole_and_older_atoms_stay(tmp_path: Path) -> None:
    provider = keys(k1=K1)
    with _open(tmp_path / "s", provider) as db:
        before = db.remember("tenant:a/x", "w", "observation", {"text": "old note"})
        assert db.add_erasable_worlds(["tenant:a/*"]) == ["tenant:a/*"]
        other = db.remember("tenant:b/x", "w", "observation", {"text": "kept note"})
    # Another process follows the store's list of erasable worlds.
    with dwbase.open(tmp_path / "s", key_provider=provider) as db:
        gone = [
            db.remember("tenant:a/x", "w", "observation", {"text": f"note {i}"}) for i in range(3)
        ]
        assert len(db.replay("tenant:a/x")) == 4
        report = db.erase_world("tenant:a/x")
        assert (report["atoms"], report["not_erasable"], report["keys_destroyed"]) == (3, 1, 1)
        assert [a.id for a in db.replay("tenant:a/x")] == [before]
        assert [h.atom.id for h in db.ask("tenant:a/x", "note").hits] == [before]
        assert [a.id for a in db.replay("tenant:b/x")] == [other]
        check = db.check()
        assert check.ok and check.erased == len(gone)


def test_an_erased_atoms_links_no_longer_count(tmp_path: Path) -> None:
    with _open(tmp_path / "s", keys(k1=K1)) as db:
        old = db.remember("p", "w", "observation", {"text": "plan a"})
        db.remember(
            "p",
            "w",
            "observation",
            {"text": "plan b"},
            labels=["subject:s"],
            links=[{"target": old, "kind": "supersedes"}],
        )
        assert db.storage.link_counts([old]) == {old: {"supersedes": 1}}
        db.erase_subject("s")
        assert db.storage.link_counts([old]) == {}
        assert [a.id for a in db.replay("p", current_only=True)] == [old]
        assert db.check().ok


def test_a_running_store_picks_up_a_new_key_file_for_a_rotation(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    (key_dir / "k1.key").write_text(K1)
    running = dwbase.open(
        tmp_path / "s", encryption_key="k1", key_provider=KeyFileProvider(key_dir)
    )
    try:
        aid = running.remember("w", "a", "observation", {"text": "one"})
        (key_dir / "k2.key").write_text(K2)  # the operator adds the new key, then rotates
        with dwbase.open(tmp_path / "s", key_provider=KeyFileProvider(key_dir)) as cli:
            cli.rotate_key("k2")
        running.remember("w", "a", "observation", {"text": "two"})
        running.forget_caches()
        assert running.get(aid).payload == {"text": "one"}
    finally:
        running.close()
    (key_dir / "k1.key").unlink()
    with dwbase.open(tmp_path / "s", key_provider=KeyFileProvider(key_dir)) as db:
        assert [a.payload["text"] for a in db.replay("w")] == ["one", "two"]

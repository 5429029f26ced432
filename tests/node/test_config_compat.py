"""The original DWBase's config.example.toml: its keys read with warnings, or refused clearly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dwbase.config import load_settings
from dwbase.errors import InvalidInputError

# The keys and values of the original DWBase's config.example.toml.
ORIGINAL = """
[node]
listen = "127.0.0.1:8080"
data_dir = "./data"
embedder = "dummy"

[node.security]
read_worlds = []
write_worlds = []
importance_cap = 1.0
remember_per_sec = 10
ask_per_min = 60

[node.storage]
encryption_enabled = false
"""


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_the_originals_example_config_loads_with_a_warning_naming_each_new_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dwbase.config"):
        s = load_settings(_config(tmp_path, ORIGINAL), environ={})
    assert (s.listen, s.data_dir, s.embedder) == ("127.0.0.1:8080", "./data", "hashing")
    assert s.auth_remember_rate == 10.0 and s.auth_ask_rate == 1.0  # 60 per minute
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for old, new in (
        ("node.embedder", '"hashing"'),
        ("node.security.remember_per_sec", "auth.remember_rate = 10"),
        ("node.security.ask_per_min", "auth.ask_rate = 1.0"),
        ("node.security.read_worlds", "remove it"),
        ("node.storage.encryption_enabled", "remove it"),
    ):
        assert old in warned and new in warned, (old, warned)


def test_health_disk_usage_degraded_is_read_as_a_percentage(tmp_path: Path) -> None:
    path = _config(tmp_path, "[node.health]\ndisk_usage_degraded = 0.95\n")
    assert load_settings(path, environ={}).health_disk_degraded_pct == 95.0


def test_encryption_enabled_with_key_id_opens_an_encrypted_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = ORIGINAL.replace(
        "encryption_enabled = false", 'encryption_enabled = true\nkey_id = "k-1"'
    ).replace('data_dir = "./data"', f'data_dir = "{tmp_path / "data"}"')
    with caplog.at_level(logging.WARNING, logger="dwbase.config"):
        s = load_settings(_config(tmp_path, text), environ={})
    assert s.storage_encryption_key == "k-1"
    assert "storage.encryption_key = 'k-1'" in caplog.text
    monkeypatch.setenv("DWBASE_KEY_K_1", "ab" * 32)
    engine = s.open_engine()
    try:
        engine.remember("demo", "a", "observation", {"text": "hello"})
        assert engine.encryption_status() == {
            "cipher": "AES-256-GCM",
            "key_id": "k-1",
            "keys": ["k-1"],
            "erasable_worlds": [],
        }
    finally:
        engine.close()


def test_encryption_enabled_without_a_key_id_is_refused(tmp_path: Path) -> None:
    text = ORIGINAL.replace("encryption_enabled = false", "encryption_enabled = true")
    with pytest.raises(InvalidInputError, match="encryption needs the key's id"):
        load_settings(_config(tmp_path, text), environ={})


def test_world_lists_and_caps_are_refused_with_the_token_command(tmp_path: Path) -> None:
    text = ORIGINAL.replace("read_worlds = []", 'read_worlds = ["demo"]')
    with pytest.raises(InvalidInputError, match=r"read_worlds.*token create NAME --read"):
        load_settings(_config(tmp_path, text), environ={})
    text = ORIGINAL.replace("importance_cap = 1.0", "importance_cap = 0.7")
    with pytest.raises(InvalidInputError, match="--importance-cap"):
        load_settings(_config(tmp_path, text), environ={})


def test_an_original_key_next_to_its_new_key_is_refused(tmp_path: Path) -> None:
    text = "[node.auth]\nask_rate = 2\n[node.security]\nask_per_min = 60\n"
    with pytest.raises(InvalidInputError, match=r"give only node\.auth\.ask_rate"):
        load_settings(_config(tmp_path, text), environ={})

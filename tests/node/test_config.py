"""Settings: defaults, TOML [node] table, DWBASE_* environment, overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dwbase.config import Settings, load_settings, settings_markdown, settings_table
from dwbase.errors import InvalidInputError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "node.md"


def test_defaults_listen_on_loopback_with_sqlite_in_dwbase_data() -> None:
    s = load_settings(None, environ={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8080, "./dwbase-data")
    assert s.storage_backend == "sqlite" and s.embedder == "hashing" and not s.insecure
    assert s.tokens_path == "./dwbase-data/tokens.json"


def test_toml_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        """
[node]
listen = "0.0.0.0:9000"
data_dir = "/srv/dwbase"

[node.security]
max_payload_bytes = 1024
trust = { "agent-1" = 0.9 }

[node.auth]
ask_rate = 5

[node.health]
disk_warn_pct = 70

[node.storage]
durability = "full"

[node.ranking]
lexical = 0.7
"""
    )
    env = {"DWBASE_HEALTH_DISK_WARN_PCT": "75", "DWBASE_INSECURE": "yes", "DWBASE_API": "x"}
    s = load_settings(str(cfg), {"listen": "127.0.0.1:9100", "auth.ask_rate": None}, environ=env)
    assert s.listen == "127.0.0.1:9100"  # override beats file
    assert s.data_dir == "/srv/dwbase"
    assert s.security_max_payload_bytes == 1024
    assert s.security_trust == {"agent-1": 0.9}
    assert s.auth_ask_rate == 5.0  # a None override leaves the file's value
    assert s.health_disk_warn_pct == 75.0  # env beats file
    assert s.insecure is True
    assert s.storage_durability == "full"
    opts = s.engine_options()
    assert opts.ranking.lexical == 0.7 and opts.max_payload_bytes == 1024
    assert opts.durability == "full" and opts.trust == {"agent-1": 0.9}


def test_env_parses_booleans_lists_and_tables() -> None:
    env = {
        "DWBASE_SECURITY_QUARANTINE": "off",
        "DWBASE_SECURITY_TRUST": "agent-1=0.9,bot=0.1",
        "DWBASE_STORAGE_MAX_DISK_MB": "512",
    }
    s = load_settings(None, environ=env)
    assert s.security_quarantine is False
    assert s.security_trust == {"agent-1": 0.9, "bot": 0.1}
    assert s.engine_options().max_disk_mb == 512


def test_swarm_settings_are_read_from_the_file_the_environment_and_overrides(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[node.swarm]\nenabled = true\nnats_url = 'nats://10.0.0.1:4222'\n"
        "want = ['team:*']\nantientropy_interval_s = 5\n"
    )
    s = load_settings(str(cfg), environ={"DWBASE_SWARM_DENY": "secret*,private"})
    assert s.swarm_enabled is True and s.swarm_nats_url == "nats://10.0.0.1:4222"
    assert s.swarm_want == ["team:*"] and s.swarm_deny == ["secret*", "private"]
    assert s.swarm_antientropy_interval_s == 5.0
    s = load_settings(None, {"swarm.share": ["team:a"]}, environ={})
    assert s.swarm_share == ["team:a"] and s.swarm_enabled is False
    assert any(row.key == "swarm.nats_url" for row in settings_table())


def test_an_unknown_swarm_setting_is_refused_by_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[node.swarm]\nsubscribe = ['*']\n")
    with pytest.raises(InvalidInputError, match=r"node\.swarm\.subscribe") as err:
        load_settings(str(cfg), environ={})
    assert err.value.details["field"] == "node.swarm.subscribe"


def test_health_min_free_mb_is_a_setting() -> None:
    s = load_settings(None, environ={"DWBASE_HEALTH_MIN_FREE_MB": "64"})
    assert s.health_min_free_mb == 64.0
    with pytest.raises(InvalidInputError, match="min_free_mb"):
        load_settings(None, environ={"DWBASE_HEALTH_MIN_FREE_MB": "-1"})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[node]\nlisten_port = 1\n", "node.listen_port"),
        ("[node.security]\nmax_payload = 1\n", "node.security.max_payload"),
        ("[node.bogus]\nx = 1\n", "node.bogus.x"),
        ("[server]\nlisten = 'x'\n", "server"),
    ],
)
def test_an_unknown_key_is_an_error_naming_it(tmp_path: Path, text: str, named: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(InvalidInputError, match=named.replace(".", r"\.")):
        load_settings(str(cfg), environ={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DWBASE_LISTEN": "nohost"}, "HOST:PORT"),
        ({"DWBASE_STORAGE_BACKEND": "mongo"}, "sqlite or memory"),
        ({"DWBASE_AUTH_ASK_RATE": "fast"}, "DWBASE_AUTH_ASK_RATE"),
        ({"DWBASE_INSECURE": "perhaps"}, "expected bool"),
        ({"DWBASE_HEALTH_DISK_WARN_PCT": "95"}, "disk_warn_pct"),
        ({"DWBASE_READ_THREADS": "0"}, "read_threads 0 must be between 1 and 64"),
    ],
)
def test_bad_values_say_which_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        load_settings(None, environ=env)


def test_missing_or_broken_config_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_settings(str(tmp_path / "nope.toml"), environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\n")
    with pytest.raises(InvalidInputError, match=r"bad\.toml"):
        load_settings(str(bad), environ={})


def test_one_table_drives_env_names_and_docs() -> None:
    rows = settings_table()
    assert len({r.env for r in rows}) == len(rows) == len(Settings.__dataclass_fields__)
    assert all(r.env.startswith("DWBASE_") and r.help for r in rows)
    assert settings_markdown() in DOCS.read_text(), "docs/node.md: paste settings_markdown()"

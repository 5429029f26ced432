"""Deployment artifacts match the node's config format and each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dwbase.config import load_settings
from dwbase.ops.deploy import node_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["local.toml", "devnet.toml", "edge.toml"])
def test_deploy_configs_load_with_the_node_loader(name: str) -> None:
    settings = load_settings(str(ROOT / "deploy" / name), environ={})
    assert settings.port > 0 and settings.data_dir


def test_edge_config_authenticates_because_it_listens_beyond_loopback() -> None:
    settings = load_settings(str(ROOT / "deploy" / "edge.toml"), environ={})
    assert settings.host == "0.0.0.0" and settings.auth_required and not settings.insecure


def _k8s() -> dict[str, Any]:
    docs: dict[str, Any] = {}
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[f"{doc['kind']}/{doc.get('metadata', {}).get('name', '')}"] = doc
    return docs


def test_k8s_manifests_are_consistent_with_the_image_and_config() -> None:
    docs = _k8s()
    assert {"ConfigMap/dwbase-config", "Service/dwbase", "StatefulSet/dwbase"} <= set(docs)
    config_toml = docs["ConfigMap/dwbase-config"]["data"]["dwbase.toml"]
    assert tomllib.loads(config_toml) == tomllib.loads((ROOT / "deploy" / "edge.toml").read_text())
    sts = docs["StatefulSet/dwbase"]["spec"]
    pod = sts["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"] == ["node", "--config", "/etc/dwbase/dwbase.toml"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/dwbase" and mounts["data"] == "/var/lib/dwbase"
    selector = docs["Service/dwbase"]["spec"]["selector"]
    assert selector == sts["selector"]["matchLabels"]


def test_dockerfile_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "COPY deploy/edge.toml /etc/dwbase/dwbase.toml" in text
    assert '"/etc/dwbase/dwbase.toml"' in text


def test_generated_node_config_round_trips_through_the_loader(tmp_path: Path) -> None:
    base = tomllib.loads((ROOT / "deploy" / "devnet.toml").read_text())["node"]
    text = node_config(
        "127.0.0.1:9999",
        tmp_path / "data",
        {"storage.durability": "full", "security.trust": {"agent-1": 0.9}},
        base,
    )
    path = tmp_path / "node.toml"
    path.write_text(text)
    s = load_settings(str(path), environ={})
    assert (s.listen, s.data_dir) == ("127.0.0.1:9999", str(tmp_path / "data"))
    assert s.storage_durability == "full" and s.security_trust == {"agent-1": 0.9}
    assert s.security_burst_count == 200  # from the template

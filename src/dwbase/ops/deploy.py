"""Local deployments: start real node processes, wait for ``/readyz``, stop them cleanly.

State lives in ``<state_dir>/state.json`` (default ``.dwbase/devnet/state.json``)::

    {"kind": "devnet", "created_at": ..., "nodes": [{"name": "node-1", "pid": 4242,
     "start_time": 123456, "url": "http://127.0.0.1:8181", "data_dir": ..., "config": ...,
     "log": ...}], "nats": null}

Each node is started as ``python -m dwbase node --config <its own toml>`` without a shell, so
the recorded pid is the node's own pid. ``stop`` checks that the pid still belongs to that node
(its start time from ``/proc`` and its command line), sends SIGTERM, waits, and only then
escalates to SIGKILL, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConflictError, InvalidInputError, NotFoundError, UnavailableError

DEFAULT_STATE_DIR = Path(".dwbase") / "devnet"
STATE_FILE = "state.json"

Report = Callable[[str], None]

# Nodes this process started: kept so they are reaped by ``wait`` (no zombies, no warnings).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _quiet(message: str) -> None:
    del message


@dataclass(slots=True)
class NodeRecord:
    name: str
    pid: int
    start_time: int | None
    url: str
    data_dir: str
    config: str
    log: str
    role: str = "node"


@dataclass(slots=True)
class DeployState:
    kind: str
    created_at: str
    nodes: list[NodeRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "created_at": self.created_at,
            "nodes": [asdict(n) for n in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeployState:
        return cls(
            kind=str(data.get("kind", "")),
            created_at=str(data.get("created_at", "")),
            nodes=[NodeRecord(**n) for n in data.get("nodes", [])],
        )


# ---------------------------------------------------------------------------------- processes


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are fixed.
    rest = stat.rsplit(")", 1)[1].split()
    return int(rest[19])


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """True if ``pid`` runs and (when known) was started at ``start_time``: the same process."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _is_zombie(pid):
        return False
    if start_time is not None:
        current = process_start_time(pid)
        if current is not None and current != start_time:
            return False  # the pid was recycled by an unrelated process
    return True


def _terminate(pid: int, start_time: int | None, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns True if it had to kill."""
    if not is_alive(pid, start_time):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, start_time):
            return False
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and is_alive(pid, start_time):
        time.sleep(0.05)
    return True


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_ready(url: str, pid: int, log: Path, timeout: float) -> None:
    """Poll ``url/readyz`` until 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not is_alive(pid):
            raise UnavailableError(
                f"node at {url} exited before it was ready; its log ends with:\n{_tail(log)}",
                url=url,
            )
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise UnavailableError(f"node at {url} not ready after {timeout:.0f}s ({last})", url=url)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------- state


def load_state(state_dir: Path) -> DeployState | None:
    path = state_dir / STATE_FILE
    try:
        return DeployState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a deploy state file: {exc}") from exc


def save_state(state_dir: Path, state: DeployState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, state_dir / STATE_FILE)


def running_nodes(state_dir: Path) -> list[NodeRecord]:
    state = load_state(state_dir)
    if state is None:
        return []
    return [n for n in state.nodes if is_alive(n.pid, n.start_time)]


# ---------------------------------------------------------------------------------- deploy


def _toml_lines(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """Flatten nested tables into quoted dotted keys (valid TOML for any key)."""
    lines: list[str] = []
    for key, value in table.items():
        path = (*prefix, str(key))
        if isinstance(value, dict):
            lines.extend(_toml_lines(value, path))
        else:
            lines.append(f"{'.'.join(json.dumps(p) for p in path)} = {json.dumps(value)}")
    return lines


def node_config(
    listen: str,
    data_dir: Path,
    extra: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> str:
    """One node's TOML (the ``[node]`` format of ``dwbase.config``).

    ``base`` is the ``[node]`` table of a template (e.g. ``deploy/devnet.toml``); ``extra``
    maps dotted keys (``"storage.durability"``) to values; ``listen`` and ``data_dir`` win.
    """
    table: dict[str, Any] = json.loads(json.dumps(base or {}))
    for dotted, value in (extra or {}).items():
        *parents, leaf = dotted.split(".")
        node = table
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    table["listen"] = listen
    table["data_dir"] = str(data_dir)
    return "[node]\n" + "\n".join(_toml_lines(table)) + "\n"


def read_template(path: Path) -> dict[str, Any]:
    """The ``[node]`` table of a config template, validated by the node's own loader."""
    import tomllib

    from ..config import load_settings

    load_settings(str(path), environ={})  # unknown keys and bad values fail here, by name
    with path.open("rb") as fh:
        node = tomllib.load(fh).get("node", {})
    return dict(node)


def start(
    kind: str,
    *,
    nodes: int = 1,
    host: str = "127.0.0.1",
    base_port: int = 8080,
    state_dir: Path = DEFAULT_STATE_DIR,
    timeout: float = 30.0,
    settings: dict[str, Any] | None = None,
    template: Path | None = None,
    python: Sequence[str] = (sys.executable,),
    report: Report = _quiet,
    swarm: bool | None = None,
) -> DeployState:
    """Start ``nodes`` node processes, wait until each answers ``/readyz``, record state.

    Refuses to start while nodes of an earlier deploy still run (``stop`` them first). If any
    node fails to get ready, the ones already started are stopped again. ``swarm`` (default:
    on for a devnet) first starts one nats-server, recorded with role ``nats``, and the nodes
    replicate through it (see :mod:`dwbase.ops.devnet`).
    """
    if kind not in ("local", "devnet"):
        raise InvalidInputError(f"deploy kind {kind!r} must be local or devnet")
    if nodes < 1:
        raise InvalidInputError("a deploy needs at least one node", field="nodes")
    alive = running_nodes(state_dir)
    if alive:
        raise ConflictError(
            f"{len(alive)} node(s) of an earlier deploy still run "
            f"({', '.join(n.url for n in alive)}); run `dwbase deploy stop` first"
        )
    ports = [base_port + i for i in range(nodes)]
    busy = [p for p in ports if not port_free(host, p)]
    if busy:
        raise ConflictError(
            f"port(s) {', '.join(map(str, busy))} on {host} are in use; choose --port",
            ports=busy,
        )
    base = read_template(template) if template is not None else None
    state_dir = state_dir.resolve()
    state = DeployState(kind=kind, created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if swarm is None:
        swarm = kind == "devnet"
    try:
        if swarm:
            from .devnet import start_nats, swarm_settings

            nats, nats_url, nats_log = start_nats(state_dir, host)
            _CHILDREN[nats.pid] = nats
            state.nodes.append(
                NodeRecord(
                    name="nats",
                    pid=nats.pid,
                    start_time=process_start_time(nats.pid),
                    url=nats_url,
                    data_dir=str(state_dir / "nats"),
                    config="",
                    log=str(nats_log),
                    role="nats",
                )
            )
            save_state(state_dir, state)
            report(f"started nats-server (pid {nats.pid}) on {nats_url}")
            homes = [state_dir / f"node-{i}" / "data" for i in range(1, len(ports) + 1)]
            settings = {**swarm_settings(state_dir, homes, nats_url), **(settings or {})}
        for i, port in enumerate(ports, 1):
            name = f"node-{i}"
            home = state_dir / name
            home.mkdir(parents=True, exist_ok=True)
            config = home / "node.toml"
            data_dir = home / "data"
            extra = dict(settings or {})
            if swarm:
                extra["swarm.endpoint"] = f"http://{host}:{port}"
            config.write_text(
                node_config(f"{host}:{port}", data_dir, extra, base), encoding="utf-8"
            )
            log = home / "node.log"
            env = {k: v for k, v in os.environ.items() if not k.startswith("DWBASE_")}
            with log.open("ab") as log_fh:
                proc = subprocess.Popen(
                    [*python, "-m", "dwbase", "node", "--config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # Ctrl-C in the terminal does not reach the nodes
                )
            _CHILDREN[proc.pid] = proc
            record = NodeRecord(
                name=name,
                pid=proc.pid,
                start_time=process_start_time(proc.pid),
                url=f"http://{host}:{port}",
                data_dir=str(data_dir),
                config=str(config),
                log=str(log),
            )
            state.nodes.append(record)
            save_state(state_dir, state)
            report(f"started {name} (pid {proc.pid}) on {record.url}")
        for record in state.nodes:
            if record.role != "node":
                continue
            wait_ready(record.url, record.pid, Path(record.log), timeout)
            report(f"{record.name} ready at {record.url}")
    except BaseException:
        for record in state.nodes:
            _terminate(record.pid, record.start_time, 5)
        state.nodes = []
        save_state(state_dir, state)
        raise
    return state


def stop(
    *, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 15.0, report: Report = _quiet
) -> list[dict[str, Any]]:
    """Stop every node recorded in the state file (SIGTERM, then SIGKILL after ``timeout``)."""
    state = load_state(state_dir)
    if state is None:
        raise NotFoundError(f"no deploy recorded in {state_dir / STATE_FILE}")
    out: list[dict[str, Any]] = []
    # Nodes first, then the nats-server they publish their last atoms to.
    for record in sorted(state.nodes, key=lambda r: r.role == "nats"):
        was_alive = is_alive(record.pid, record.start_time)
        killed = _terminate(record.pid, record.start_time, timeout) if was_alive else False
        outcome = "killed" if killed else ("stopped" if was_alive else "not running")
        report(f"{record.name} (pid {record.pid}): {outcome}")
        out.append({"name": record.name, "pid": record.pid, "result": outcome})
    state.nodes = []
    save_state(state_dir, state)
    return out


def clean(
    *, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 15.0, report: Report = _quiet
) -> list[dict[str, Any]]:
    """Stop every node, then delete the deploy directory (configs, logs and node data)."""
    stopped: list[dict[str, Any]] = []
    if load_state(state_dir) is not None:
        stopped = stop(state_dir=state_dir, timeout=timeout, report=report)
    if state_dir.exists():
        shutil.rmtree(state_dir)
        report(f"removed {state_dir}")
    return stopped

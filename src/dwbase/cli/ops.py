"""Operator commands that manage files and processes: node, backup, deploy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from ..errors import InvalidInputError
from .atoms import JsonFlag
from .context import state
from .groups import sub_app
from .render import note, out, print_json, rows_table

# ---------------------------------------------------------------------------------- node


def node(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", metavar="FILE", help="TOML file with a [node] table."),
    ] = None,
    listen: Annotated[
        str | None, typer.Option("--listen", metavar="HOST:PORT", help="Address to listen on.")
    ] = None,
    insecure: Annotated[
        bool | None,
        typer.Option("--insecure", help="Allow a non-loopback address with no tokens."),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", metavar="LEVEL", help="debug, info, …")
    ] = None,
) -> None:
    """Run a DWBase HTTP node (default 127.0.0.1:8080, data in ./dwbase-data).

    Settings come from the defaults, then --config, then DWBASE_* variables, then these
    flags; the global --data-dir sets node.data_dir.

    \b
    Examples:
      dwbase node
      dwbase --data-dir /var/lib/dwbase node --config deploy/local.toml --listen 0.0.0.0:8080
    """
    from ..config import load_settings

    st = state(ctx)
    overrides: dict[str, Any] = {
        "listen": listen,
        "insecure": insecure,
        "log_level": log_level,
        "data_dir": str(st.data_dir) if st.data_dir is not None else None,
    }
    settings = load_settings(str(config) if config is not None else None, overrides)
    from ..node.server import serve

    serve(settings)


# ---------------------------------------------------------------------------------- backup

backup_app = sub_app(
    "backup",
    "Consistent online backups (tar + zstd with a checksummed manifest) and restores.\n\n"
    "\b\nExample:\n  dwbase --data-dir ./node-data backup create ./dwbase.tar.zst",
)


@contextmanager
def _bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar fed by the ops layer's ``(phase, done, total)`` callback."""
    if not enabled:
        yield lambda phase, done, total: None
        return
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=out()
    )
    tasks: dict[str, Any] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=max(total, 1))
        progress.update(tasks[phase], completed=done, total=max(total, 1))

    with progress:
        yield report


@backup_app.command("create")
def backup_create(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE", help="Output, e.g. b.tar.zst.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite ARCHIVE if it exists.")] = False,
    level: Annotated[
        int, typer.Option("--level", metavar="N", help="zstd level 1-22.", min=1, max=22)
    ] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Snapshot the store of --data-dir (a node may be running on it) into ARCHIVE.

    Uses SQLite's online backup API, so the snapshot is consistent while writes go on. The
    archive holds manifest.json (format version, SHA-256 of each file, index metadata).

    \b
    Example:
      dwbase --data-dir ./node-data backup create ./backups/dwbase-$(date +%F).tar.zst
    """
    from ..ops.backup import create_backup

    data_dir = state(ctx).require_data_dir("backup create")
    with _bar(not as_json) as report:
        manifest = create_backup(data_dir, archive, force=force, level=level, progress=report)
    if as_json:
        print_json({"archive": str(archive), "manifest": manifest})
        return
    counts = manifest["counts"]
    note(
        f"backed up {counts['atoms']} atom(s) in {counts['worlds']} world(s) to {archive} "
        f"({archive.stat().st_size} bytes)"
    )


MaxBytesOpt = Annotated[
    int | None,
    typer.Option(
        "--max-bytes",
        metavar="N",
        min=0,
        help="Refuse an archive whose files declare more than N bytes (the free disk space "
        "is always a limit).",
    ),
]


@backup_app.command("restore")
def backup_restore(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE", help="A backup archive.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty --data-dir (stop its node first).")
    ] = False,
    max_bytes: MaxBytesOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore ARCHIVE into --data-dir after validating the whole archive.

    Refuses a non-empty --data-dir without --force, and refuses while another process (a
    node, the CLI) has the store open. Every checksum, the full storage check, and the
    manifest's counts and world heads must match before the target is touched. Restored files
    are private (mode 0600).

    \b
    Example:
      dwbase --data-dir ./restored backup restore ./backups/dwbase-2024-06-01.tar.zst
    """
    from ..ops.backup import restore_backup

    data_dir = state(ctx).require_data_dir("backup restore")
    with out().status("validating and restoring…") if not as_json else _nothing():
        result = restore_backup(archive, data_dir, force=force, max_bytes=max_bytes)
    if as_json:
        print_json(result)
        return
    check = result["check"]
    note(f"restored {check['records']} atom(s) in {check['worlds']} world(s) into {data_dir}")


@backup_app.command("verify")
def backup_verify(
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE", help="A backup archive.")],
    max_bytes: MaxBytesOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate ARCHIVE completely without restoring it (it is extracted to a temporary dir).

    \b
    Example:
      dwbase backup verify ./backups/dwbase-2024-06-01.tar.zst
    """
    from ..ops.backup import verify_backup

    result = verify_backup(archive, max_bytes=max_bytes)
    if as_json:
        print_json(result)
        return
    check = result["check"]
    note(f"[green]ok[/]: {archive} holds {check['records']} atom(s), every checksum matches")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# ---------------------------------------------------------------------------------- deploy

deploy_app = sub_app(
    "deploy",
    "Run local node processes: local (one node), devnet (several), stop, clean, status.\n\n"
    "\b\nExample:\n  dwbase deploy devnet --nodes 3 && dwbase deploy stop",
)

StateDirOpt = Annotated[
    Path,
    typer.Option(
        "--state-dir", metavar="DIR", envvar="DWBASE_DEPLOY_DIR", help="Where state.json lives."
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", metavar="SECONDS", help="Wait this long per node.")
]
TemplateOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", metavar="FILE", help="Template [node] config (listen/data_dir set here)."
    ),
]
SettingOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Extra [node] setting (TOML value), repeatable."
    ),
]
DEFAULT_STATE = Path(".dwbase") / "devnet"


def _settings(values: list[str] | None) -> dict[str, Any]:
    import tomllib

    out_: dict[str, Any] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--set {item!r}: expected KEY=VALUE", field="set")
        try:
            out_[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out_[key.strip()] = raw  # a bare word is a string
    return out_


def _start(
    kind: str,
    nodes: int,
    port: int,
    host: str,
    state_dir: Path,
    timeout: float,
    settings: list[str] | None,
    template: Path | None,
    as_json: bool,
    swarm: bool | None = None,
) -> None:
    from ..ops import deploy

    st = deploy.start(
        kind,
        nodes=nodes,
        host=host,
        base_port=port,
        state_dir=state_dir,
        timeout=timeout,
        settings=_settings(settings),
        template=template,
        report=_reporter(as_json),
        swarm=swarm,
    )
    if as_json:
        print_json(st.to_dict())
        return
    note(f"{kind}: {len(st.nodes)} node(s) ready; state in {state_dir / deploy.STATE_FILE}")


@deploy_app.command("local")
def deploy_local(
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port.")] = 8080,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address.")] = "127.0.0.1",
    state_dir: StateDirOpt = DEFAULT_STATE,
    timeout: TimeoutOpt = 30.0,
    settings: SettingOpt = None,
    config: TemplateOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Start one node process in the background and wait until /readyz answers.

    \b
    Example:
      dwbase deploy local --port 8080 && dwbase --api http://127.0.0.1:8080 list-worlds
    """
    _start("local", 1, port, host, state_dir, timeout, settings, config, as_json)


@deploy_app.command("devnet")
def deploy_devnet(
    nodes: Annotated[int, typer.Option("--nodes", metavar="N", help="How many nodes.")] = 3,
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="First port.")] = 8181,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address.")] = "127.0.0.1",
    state_dir: StateDirOpt = DEFAULT_STATE,
    timeout: TimeoutOpt = 30.0,
    settings: SettingOpt = None,
    config: TemplateOpt = None,
    no_swarm: Annotated[
        bool, typer.Option("--no-swarm", help="Nodes that do not replicate (no nats-server).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start one nats-server and N replicating node processes; wait until each is ready.

    Each node gets its own config, data dir, key and log under the state dir; peers.json
    there lists every node's public key, so the nodes trust each other and replicate every
    world through the nats-server (JetStream, store under the state dir). `deploy stop`
    stops the nodes, then the nats-server.

    \b
    Example:
      dwbase deploy devnet --nodes 3 --port 8181 --config deploy/devnet.toml \\
          --set storage.durability=full
      dwbase --api http://127.0.0.1:8181 swarm status
    """
    _start(
        "devnet",
        nodes,
        port,
        host,
        state_dir,
        timeout,
        settings,
        config,
        as_json,
        swarm=not no_swarm,
    )


@deploy_app.command("status")
def deploy_status(state_dir: StateDirOpt = DEFAULT_STATE, as_json: JsonFlag = False) -> None:
    """Show the recorded nodes and whether each still runs.

    \b
    Example:
      dwbase deploy status
    """
    from ..ops import deploy

    st = deploy.load_state(state_dir)
    nodes = st.nodes if st is not None else []
    rows = [
        {
            "name": n.name,
            "pid": n.pid,
            "url": n.url,
            "running": deploy.is_alive(n.pid, n.start_time),
            "data_dir": n.data_dir,
        }
        for n in nodes
    ]
    if as_json:
        print_json({"kind": st.kind if st else None, "nodes": rows})
        return
    if not rows:
        note("[dim]no nodes recorded[/]")
        return
    out().print(
        rows_table(["name", "pid", "url", "running", "data_dir"], (list(r.values()) for r in rows))
    )


@deploy_app.command("stop")
def deploy_stop(
    state_dir: StateDirOpt = DEFAULT_STATE,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="SIGKILL after this long.")
    ] = 15.0,
    as_json: JsonFlag = False,
) -> None:
    """Stop every recorded node (SIGTERM, then SIGKILL after --timeout).

    \b
    Example:
      dwbase deploy stop
    """
    from ..ops import deploy

    result = deploy.stop(state_dir=state_dir, timeout=timeout, report=_reporter(as_json))
    if as_json:
        print_json(result)


@deploy_app.command("clean")
def deploy_clean(
    state_dir: StateDirOpt = DEFAULT_STATE,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="SIGKILL after this long.")
    ] = 15.0,
    as_json: JsonFlag = False,
) -> None:
    """Stop every recorded node and delete the state dir with the nodes' data and logs.

    \b
    Example:
      dwbase deploy clean
    """
    from ..ops import deploy

    result = deploy.clean(state_dir=state_dir, timeout=timeout, report=_reporter(as_json))
    if as_json:
        print_json(result)


def _reporter(as_json: bool) -> Any:
    return (lambda m: None) if as_json else note


def register(app: typer.Typer) -> None:
    app.command("node")(node)
    app.add_typer(backup_app)
    app.add_typer(deploy_app)

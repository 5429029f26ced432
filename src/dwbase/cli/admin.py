"""Operator commands: world, index, quarantine, storage, gc and token."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import StorageError
from .atoms import JsonFlag
from .context import open_backend, open_local, state
from .groups import sub_app
from .render import (
    note,
    out,
    print_atoms,
    print_json,
    rows_table,
)

WorldArg = Annotated[str, typer.Argument(metavar="WORLD", help="World key, e.g. demo.")]


def _done(as_json: bool, data: dict[str, Any], message: str) -> None:
    if as_json:
        print_json(data)
    else:
        note(message)


# ---------------------------------------------------------------------------------- world

world_app = sub_app(
    "world",
    "Manage worlds: create, archive, resume, policy.\n\n"
    "\b\nExample:\n  dwbase --data-dir ./mem world create incident:42 --description 'db outage'",
)


@world_app.command("create")
def world_create(
    ctx: typer.Context,
    world: WorldArg,
    description: Annotated[
        str | None, typer.Option("--description", metavar="TEXT", help="What the world is for.")
    ] = None,
    labels: Annotated[
        list[str] | None, typer.Option("--label", metavar="LABEL", help="A label (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a world (records a world_meta atom; the world is active).

    \b
    Example:
      dwbase --data-dir ./mem world create incident:42 --description "checkout outage"
    """
    with open_backend(ctx, create=True) as db:
        aid = db.create_world(world, description=description, labels=list(labels or ()))
    _done(as_json, {"id": str(aid), "world": world, "status": "active"}, f"created {world}")


@world_app.command("archive")
def world_archive(ctx: typer.Context, world: WorldArg, as_json: JsonFlag = False) -> None:
    """Archive a world: it leaves default listings and refuses writes until resumed.

    \b
    Example:
      dwbase --data-dir ./mem world archive incident:42
    """
    with open_backend(ctx) as db:
        aid = db.archive_world(world)
    _done(as_json, {"id": str(aid), "world": world, "status": "archived"}, f"archived {world}")


@world_app.command("resume")
def world_resume(ctx: typer.Context, world: WorldArg, as_json: JsonFlag = False) -> None:
    """Resume an archived world.

    \b
    Example:
      dwbase --data-dir ./mem world resume incident:42
    """
    with open_backend(ctx) as db:
        aid = db.resume_world(world)
    _done(as_json, {"id": str(aid), "world": world, "status": "active"}, f"resumed {world}")


@world_app.command("policy")
def world_policy(
    ctx: typer.Context,
    world: WorldArg,
    retention_days: Annotated[
        int | None,
        typer.Option("--retention-days", metavar="N", help="Keep atoms N days (0: no expiry)."),
    ] = None,
    retention_min_days: Annotated[
        int | None,
        typer.Option("--retention-min-days", metavar="N", help="Never evict before N days."),
    ] = None,
    min_importance: Annotated[
        float | None,
        typer.Option("--min-importance", metavar="FLOAT", help="gc evicts atoms below this."),
    ] = None,
    replication_allow: Annotated[
        list[str] | None,
        typer.Option("--replication-allow", metavar="PATTERN", help="Replicate to (repeatable)."),
    ] = None,
    replication_deny: Annotated[
        list[str] | None,
        typer.Option("--replication-deny", metavar="PATTERN", help="Never replicate to."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a policy atom for a world (retention, minimum importance, replication).

    \b
    Example:
      dwbase --data-dir ./mem world policy demo --retention-days 30 --min-importance 0.2
    """
    with open_backend(ctx, create=True) as db:
        aid = db.set_policy(
            world,
            retention_days=retention_days,
            retention_min_days=retention_min_days,
            min_importance=min_importance,
            replication_allow=replication_allow or None,
            replication_deny=replication_deny or None,
        )
    _done(as_json, {"id": str(aid), "world": world}, f"policy of {world} recorded as {aid}")


# ---------------------------------------------------------------------------------- index

index_app = sub_app(
    "index",
    "Vector index status and rebuilds.\n\n\b\nExample:\n  dwbase --data-dir ./mem index status",
)

_INDEX_COLUMNS = ("world", "kind", "dim", "embedder", "vectors", "ready", "rebuilding", "lag")


@index_app.command("status")
def index_status(
    ctx: typer.Context,
    world: Annotated[
        str | None, typer.Option("--world", "-w", metavar="WORLD", help="Only this world.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show index metadata per world (kind, dims, embedder, ready, rebuilding, lag).

    \b
    Example:
      dwbase --api http://127.0.0.1:8080 index status --json
    """
    with open_backend(ctx) as db:
        rows: list[dict[str, Any]] = db.index_status(world)
    if as_json:
        print_json(rows)
        return
    if not rows:
        note("[dim]no indexes[/]")
        return
    out().print(rows_table(_INDEX_COLUMNS, ([r.get(c) for c in _INDEX_COLUMNS] for r in rows)))


@index_app.command("rebuild")
def index_rebuild(
    ctx: typer.Context,
    world: Annotated[
        str | None, typer.Option("--world", "-w", metavar="WORLD", help="Only this world.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rebuild the vector index of one world or of all worlds.

    \b
    Example:
      dwbase --data-dir ./mem index rebuild --world demo
    """
    with out().status("rebuilding index…"), open_backend(ctx) as db:
        result: dict[str, Any] = db.index_rebuild(world)
    _done(as_json, result, f"rebuilt {len(result.get('worlds', []))} index(es)")


# ---------------------------------------------------------------------------------- quarantine

quarantine_app = sub_app(
    "quarantine",
    "Atoms held in quarantine:<world>: list, release, drop.\n\n"
    "\b\nExample:\n  dwbase --data-dir ./mem quarantine list --world demo",
)


@quarantine_app.command("list")
def quarantine_list(
    ctx: typer.Context,
    world: Annotated[
        str | None, typer.Option("--world", "-w", metavar="WORLD", help="Only this world.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most N.")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """List quarantined atoms (flagged suspect), oldest first.

    \b
    Example:
      dwbase --data-dir ./mem quarantine list --world demo --json
    """
    with open_backend(ctx) as db:
        atoms = db.quarantine_list(world, limit=limit)
    print_atoms(atoms, as_json=as_json, title="quarantine")


@quarantine_app.command("release")
def quarantine_release(
    ctx: typer.Context,
    atom_id: Annotated[str, typer.Argument(metavar="ID", help="Quarantined atom id.")],
    as_json: JsonFlag = False,
) -> None:
    """Move a quarantined atom back into its world (it keeps its id).

    \b
    Example:
      dwbase --data-dir ./mem quarantine release 0190f3c2-7d1e-7a4b-8c3d-2e1f0a9b8c7d
    """
    with open_backend(ctx) as db:
        atom = db.quarantine_release(atom_id)
    _done(as_json, {"id": atom_id, "world": atom.world}, f"released {atom_id} into {atom.world}")


@quarantine_app.command("drop")
def quarantine_drop(
    ctx: typer.Context,
    atom_id: Annotated[str, typer.Argument(metavar="ID", help="Quarantined atom id.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete a quarantined atom for good.

    \b
    Example:
      dwbase --data-dir ./mem quarantine drop 0190f3c2-7d1e-7a4b-8c3d-2e1f0a9b8c7d
    """
    with open_backend(ctx) as db:
        db.quarantine_drop(atom_id)
    _done(as_json, {"id": atom_id, "dropped": True}, f"dropped {atom_id}")


# ---------------------------------------------------------------------------------- storage

storage_app = sub_app(
    "storage",
    "Check, reindex and compact an embedded store.\n\n"
    "\b\nExample:\n  dwbase --data-dir ./mem storage check",
)


@storage_app.command("check")
def storage_check(
    ctx: typer.Context,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="SQLite's quick_check instead of its full integrity_check, and no FTS5 "
            "index check (faster on a large store; indexes are still compared with the atoms).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify the store; exit 1 on a problem.

    Runs SQLite's full integrity check, verifies every record's checksum and every world's
    hash chain against its anchored head, and compares the text, tag, link and vector
    indexes, the dim metadata and quarantine state with the atoms.

    \b
    Example:
      dwbase --data-dir ./mem storage check --json
    """
    with out().status("checking every record…"), open_local(ctx, "storage check") as db:
        report = db.check(quick=quick)
    data = {
        "ok": report.ok,
        "records": report.records,
        "worlds": report.worlds,
        "problems": list(report.problems),
        "erased": report.erased,
    }
    if as_json:
        print_json(data)
    else:
        status = "[green]ok[/]" if report.ok else "[red]PROBLEMS[/]"
        erased = f" ({report.erased} erased by key)" if report.erased else ""
        note(f"{status}: {report.records} records in {report.worlds} world(s) checked{erased}")
        for p in report.problems:
            note(f"  [red]-[/] {p}")
    if not report.ok:
        raise StorageError(f"{len(report.problems)} problem(s) found; see above")


@storage_app.command("reindex")
def storage_reindex(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Rebuild the label, link and text indexes from the atoms.

    \b
    Example:
      dwbase --data-dir ./mem storage reindex
    """
    with out().status("reindexing…"), open_local(ctx, "storage reindex") as db:
        n = db.reindex()
    _done(as_json, {"reindexed": n}, f"reindexed {n} atom(s)")


@storage_app.command("compact")
def storage_compact(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Reclaim disk space (merge the text index, VACUUM, truncate the WAL).

    \b
    Example:
      dwbase --data-dir ./mem storage compact
    """
    with out().status("compacting…"), open_local(ctx, "storage compact") as db:
        result: dict[str, Any] = db.compact()
    _done(
        as_json,
        result,
        f"compacted: {result.get('used_bytes_before')} → {result.get('used_bytes_after')} bytes",
    )


# ---------------------------------------------------------------------------------- gc


def gc(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Apply retention, minimum importance and the disk budget now.

    On a node (--api) the token needs the operate capability, and only the worlds it
    operates on are collected.

    \b
    Examples:
      dwbase --data-dir ./mem gc --json
      dwbase --api http://127.0.0.1:8080 --token "$OPS_TOKEN" gc
    """
    with open_backend(ctx) as db:
        report = db.gc()
    data = report.to_dict()
    if as_json:
        print_json(data)
        return
    note(f"evicted {data['evicted']} atom(s)")
    if data.get("by_world"):
        out().print(rows_table(["world", "evicted"], sorted(data["by_world"].items())))


# ---------------------------------------------------------------------------------- token

token_app = sub_app(
    "token",
    "API tokens of a node (stored hashed in <data-dir>/tokens.json).\n\n"
    "\b\nExample:\n  dwbase --data-dir ./node-data token create agent-1 --read 'demo*'",
)


def _tokens_file(ctx: typer.Context, tokens_file: str | None) -> str:
    if tokens_file:
        return tokens_file
    import os

    from ..security.tokens import TOKENS_FILE

    return os.path.join(state(ctx).require_data_dir("token commands"), TOKENS_FILE)


TokensFileOpt = Annotated[
    str | None,
    typer.Option(
        "--tokens-file", metavar="PATH", help="Token file (default <data-dir>/tokens.json)."
    ),
]


def _scope(patterns: list[str] | None) -> list[str] | None:
    """Repeatable world patterns (not given: None); ``--write ''`` stands for none."""
    return [p for p in patterns if p] if patterns else None


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    worker: Annotated[str, typer.Argument(metavar="WORKER", help="The worker it writes as.")],
    read: Annotated[
        list[str] | None,
        typer.Option("--read", metavar="PATTERN", help="Readable worlds (repeatable; '*')."),
    ] = None,
    write: Annotated[
        list[str] | None,
        typer.Option("--write", metavar="PATTERN", help="Writable worlds (default: --read)."),
    ] = None,
    kinds: Annotated[
        list[str] | None, typer.Option("--kind", metavar="KIND", help="Allowed kinds.")
    ] = None,
    labels: Annotated[
        list[str] | None, typer.Option("--label", metavar="LABEL", help="Allowed labels.")
    ] = None,
    importance_cap: Annotated[
        float | None, typer.Option("--importance-cap", metavar="FLOAT", help="Highest importance.")
    ] = None,
    remember_rate: Annotated[
        float | None, typer.Option("--remember-rate", metavar="PER_S", help="Atoms per second.")
    ] = None,
    ask_rate: Annotated[
        float | None, typer.Option("--ask-rate", metavar="PER_S", help="Asks per second.")
    ] = None,
    operate: Annotated[
        list[str] | None,
        typer.Option(
            "--operate",
            metavar="PATTERN",
            help="Worlds it may run operator actions on: quarantine release/drop, gc.",
        ),
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", metavar="PATTERN", help="Worlds whose policy it may set (retention...)."
        ),
    ] = None,
    manage: Annotated[
        list[str] | None,
        typer.Option(
            "--manage", metavar="PATTERN", help="Worlds it may create, archive and resume."
        ),
    ] = None,
    admin: Annotated[
        bool,
        typer.Option("--admin", help="Shorthand: --operate, --policy and --manage = --write."),
    ] = False,
    name: Annotated[str, typer.Option("--name", metavar="TEXT", help="A note for people.")] = "",
    tokens_file: TokensFileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token bound to a worker and capabilities; the secret is shown once.

    \b
    Example:
      dwbase --data-dir ./node-data token create agent-1 --read 'demo*' --write demo \\
          --kind observation --importance-cap 0.7 --remember-rate 50
      dwbase --data-dir ./node-data token create ops --read '*' --write '' --operate '*'
    """
    from ..security.tokens import TokenStore

    secret, info = TokenStore(_tokens_file(ctx, tokens_file)).create(
        worker,
        read=list(read or ["*"]),
        write=_scope(write),
        kinds=list(kinds) if kinds else None,
        labels=list(labels) if labels else None,
        importance_cap=importance_cap,
        remember_rate=remember_rate,
        ask_rate=ask_rate,
        admin=admin,
        operate=_scope(operate),
        policy=_scope(policy),
        manage=_scope(manage),
        name=name,
    )
    if as_json:
        print_json({"token": secret, **info.to_dict()})
        return
    note(f"created token [cyan]{info.id}[/] for worker {info.worker}")
    note("secret (shown only now):")
    out().print(secret, soft_wrap=True, markup=False)


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    include_revoked: Annotated[
        bool, typer.Option("--include-revoked", help="Also list revoked tokens.")
    ] = False,
    tokens_file: TokensFileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (never their secrets).

    \b
    Example:
      dwbase --data-dir ./node-data token list --include-revoked
    """
    from ..security.tokens import TokenStore

    tokens = TokenStore(_tokens_file(ctx, tokens_file)).list(include_revoked=include_revoked)
    if as_json:
        print_json([t.to_dict() for t in tokens])
        return
    if not tokens:
        note("[dim]no tokens[/]")
        return
    out().print(
        rows_table(
            [
                "id",
                "worker",
                "read",
                "write",
                "kinds",
                "cap",
                "operate",
                "policy",
                "manage",
                "status",
                "name",
            ],
            (
                [
                    t.id,
                    t.worker,
                    ",".join(t.read),
                    ",".join(t.write),
                    ",".join(t.kinds) if t.kinds is not None else "*",
                    t.importance_cap,
                    ",".join(t.operate),
                    ",".join(t.policy),
                    ",".join(t.manage),
                    "active" if t.active else "revoked",
                    t.name,
                ]
                for t in tokens
            ),
        )
    )


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="Token id (from `token list`).")],
    tokens_file: TokensFileOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a token; a running node refuses it within a second.

    \b
    Example:
      dwbase --data-dir ./node-data token revoke 3f9a1c2b7d4e
    """
    from ..security.tokens import TokenStore

    info = TokenStore(_tokens_file(ctx, tokens_file)).revoke(token_id)
    _done(as_json, info.to_dict(), f"revoked token {info.id} ({info.worker})")


def register(app: typer.Typer) -> None:
    app.add_typer(world_app)
    app.add_typer(index_app)
    app.add_typer(quarantine_app)
    app.add_typer(storage_app)
    app.command("gc")(gc)
    app.add_typer(token_app)

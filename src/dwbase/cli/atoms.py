"""Atom commands: remember, ask, replay, inspect, list-worlds, observe."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InvalidInputError
from ..model import KINDS, LINK_KINDS, QUARANTINE_PREFIX, Atom, AtomFilter
from .context import open_backend
from .render import (
    note,
    out,
    payload_summary,
    print_answer,
    print_atom,
    print_atoms,
    print_json,
    print_json_line,
    rows_table,
)

EXIT_HELD = 3  # remember: stored, but held in quarantine:<world> (see --help)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
WorldOpt = Annotated[
    str, typer.Option("--world", "-w", metavar="WORLD", help="World key, e.g. demo.")
]
KindsOpt = Annotated[
    list[str] | None, typer.Option("--kind", metavar="KIND", help="Only this kind (repeatable).")
]
LabelsOpt = Annotated[
    list[str] | None,
    typer.Option("--label", metavar="LABEL", help="Atoms must carry this label (repeatable)."),
]
FlagsOpt = Annotated[
    list[str] | None,
    typer.Option("--flag", metavar="FLAG", help="Atoms must carry this flag (repeatable)."),
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", metavar="TIME", help="Event time from (RFC 3339, inclusive)."),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", metavar="TIME", help="Event time until (RFC 3339, inclusive)."),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of", metavar="TIME", help="Read what the store knew at this record time (RFC 3339)."
    ),
]
CurrentOpt = Annotated[
    bool, typer.Option("--current-only", help="Hide atoms superseded by a later atom.")
]


def parse_link(value: str) -> dict[str, str]:
    """``ID`` (a references link) or ``KIND:ID``, e.g. ``supersedes:0190f…``."""
    kind, sep, target = value.partition(":")
    if sep and kind in LINK_KINDS:
        return {"target": target, "kind": kind}
    if sep and kind and kind not in LINK_KINDS and "-" not in kind:
        raise InvalidInputError(
            f"link {value!r}: kind {kind!r} is not one of {', '.join(LINK_KINDS)}",
            field="links",
        )
    return {"target": value, "kind": "references"}


def read_json_text(value: str, option: str) -> str:
    """The JSON text of an option; ``@path`` reads it from a file."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"{option}: cannot read {path}: {exc}", field=option) from exc


def read_json_arg(value: str, option: str) -> Any:
    """Parse a JSON option; ``@path`` reads the JSON from a file."""
    text = read_json_text(value, option)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{option} is not valid JSON: {exc}", field=option) from exc


def atom_filter(
    kinds: list[str] | None,
    labels: list[str] | None,
    flags: list[str] | None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
) -> AtomFilter:
    """The options ``--kind``, ``--label``, ``--flag``, ``--since``, ``--until``, ``--limit``
    as the one filter type every surface takes."""
    return AtomFilter(
        kinds=tuple(kinds or ()),
        labels=tuple(labels or ()),
        flags=tuple(flags or ()),
        since=since or None,
        until=until or None,
        limit=limit,
    )


def remember(
    ctx: typer.Context,
    world: WorldOpt,
    worker: Annotated[
        str,
        typer.Option(
            "--worker", envvar="DWBASE_WORKER", metavar="WORKER", help="Who writes the atom."
        ),
    ] = "cli",
    kind: Annotated[
        str, typer.Option("--kind", metavar="KIND", help=f"One of {', '.join(KINDS)}.")
    ] = "observation",
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            metavar="JSON",
            help='Payload JSON, e.g. \'{"text": "hi"}\', or @file.json.',
        ),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option("--text", metavar="TEXT", help="Shortcut for --payload '{\"text\": TEXT}'."),
    ] = None,
    importance: Annotated[
        float, typer.Option("--importance", metavar="FLOAT", help="In [0, 1].")
    ] = 0.5,
    labels: Annotated[
        list[str] | None, typer.Option("--label", metavar="LABEL", help="A label (repeatable).")
    ] = None,
    flags: Annotated[
        list[str] | None, typer.Option("--flag", metavar="FLAG", help="A flag (repeatable).")
    ] = None,
    links: Annotated[
        list[str] | None,
        typer.Option(
            "--link",
            metavar="[KIND:]ID",
            help="ID or KIND:ID, KIND one of supersedes, contradicts, …",
        ),
    ] = None,
    timestamp: Annotated[
        str, typer.Option("--timestamp", metavar="TIME", help="Event time (RFC 3339); default now.")
    ] = "",
    vector: Annotated[
        str | None,
        typer.Option("--vector", metavar="JSON", help="Embedding as a JSON list of numbers."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store one atom and print its id.

    A write held in quarantine (e.g. a payload with a NaN number) is stored in
    quarantine:WORLD instead: the command says so and exits with status 3.

    \b
    Examples:
      dwbase --data-dir ./mem remember --world demo --text "checkout latency 820ms" \\
          --importance 0.9 --label latency
      dwbase --data-dir ./mem remember -w demo --kind plan --payload '{"step": 1}' \\
          --link supersedes:0190f3c2-7d1e-7a4b-8c3d-2e1f0a9b8c7d
    """
    if payload is not None and text is not None:
        raise InvalidInputError("give --payload or --text, not both", field="payload")
    kwargs: dict[str, Any] = {
        "importance": importance,
        "timestamp": timestamp,
        "labels": list(labels or ()),
        "flags": list(flags or ()),
        "links": [parse_link(x) for x in links or ()],
    }
    body: Any = None
    if text is not None:
        body = {"text": text}
    elif payload is not None:
        # The engine gets the text itself, so it validates exactly what the user wrote.
        raw = read_json_text(payload, "--payload")
        if not isinstance(read_json_arg(raw, "--payload"), dict):
            raise InvalidInputError("--payload must be a JSON object", field="payload")
        kwargs["payload_json"] = raw
    if payload is None and text is None:
        raise InvalidInputError(
            "remember needs a payload: give --text TEXT or --payload JSON", field="payload"
        )
    if vector is not None:
        kwargs["vector"] = read_json_arg(vector, "--vector")
    with open_backend(ctx, create=True) as db:
        aid = db.remember(world, worker, kind, body, **kwargs)
    held_world = aid.held_world or (QUARANTINE_PREFIX + world if aid.held else None)
    if as_json:
        print_json(
            {
                "id": str(aid),
                "world": world,
                "quarantined": aid.quarantined,
                "held": aid.held,
                "held_world": held_world,
            }
        )
    elif aid.held:
        note(
            f"[yellow]held[/] [cyan]{aid}[/] in {held_world} ({aid.quarantined}): "
            f"readers of {world} do not see it until an admin runs "
            f"'dwbase quarantine release {aid}'"
        )
    else:
        note(f"remembered [cyan]{aid}[/] in {world}")
    if aid.held:
        raise typer.Exit(EXIT_HELD)


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question, in words.")],
    world: WorldOpt,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many hits.")] = 10,
    kinds: KindsOpt = None,
    labels: LabelsOpt = None,
    flags: FlagsOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_of: AsOfOpt = None,
    current_only: CurrentOpt = False,
    rank: Annotated[
        str, typer.Option("--rank", metavar="MODE", help="hybrid (default), recency or importance.")
    ] = "hybrid",
    as_json: JsonFlag = False,
) -> None:
    """Ask a world a question: ranked atoms with the parts of each score.

    \b
    Examples:
      dwbase --data-dir ./mem ask --world demo "why is checkout slow?"
      dwbase --data-dir ./mem ask -w demo --limit 3 --label latency --json "checkout"
    """
    with open_backend(ctx) as db:
        answer = db.ask(
            world,
            question,
            filter=atom_filter(kinds, labels, flags, since, until),
            limit=limit,
            as_of=as_of,
            rank=rank,
            current_only=current_only,
        )
    print_answer(answer, as_json=as_json)


def replay(
    ctx: typer.Context,
    world: WorldOpt,
    kinds: KindsOpt = None,
    labels: LabelsOpt = None,
    flags: FlagsOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", metavar="N", help="At most N atoms.")
    ] = None,
    as_of: AsOfOpt = None,
    current_only: CurrentOpt = False,
    order: Annotated[
        str,
        typer.Option(
            "--order", metavar="ORDER", help="append (default) or event (event-time order)."
        ),
    ] = "append",
    after: Annotated[
        str | None,
        typer.Option("--after", metavar="ID", help="Start after this atom id (a cursor)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay a world's atoms in order, filtered.

    \b
    Examples:
      dwbase --data-dir ./mem replay --world demo --kind observation --limit 50
      dwbase --data-dir ./mem replay -w demo --since 2024-01-01T00:00:00Z --current-only --json
    """
    with open_backend(ctx) as db:
        atoms: list[Atom] = db.replay(
            world,
            filter=atom_filter(kinds, labels, flags, since, until, limit),
            as_of=as_of,
            order=order,
            current_only=current_only,
            after=after,
        )
    print_atoms(atoms, as_json=as_json, title=f"replay {world}")


def inspect(
    ctx: typer.Context,
    atom_id: Annotated[str, typer.Argument(metavar="ID", help="The atom id.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one atom with every field.

    \b
    Example:
      dwbase --data-dir ./mem inspect 0190f3c2-7d1e-7a4b-8c3d-2e1f0a9b8c7d --json
    """
    with open_backend(ctx) as db:
        atom: Atom = db.get(atom_id)
    print_atom(atom, as_json=as_json)


def list_worlds(
    ctx: typer.Context,
    include_archived: Annotated[
        bool, typer.Option("--include-archived", help="Also list archived worlds.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the worlds of the store (archived ones only with --include-archived).

    \b
    Example:
      dwbase --data-dir ./mem list-worlds --include-archived
    """
    with open_backend(ctx) as db:
        worlds: list[str] = db.list_worlds(include_archived=include_archived)
    if as_json:
        print_json(worlds)
        return
    if not worlds:
        note("[dim]no worlds[/]")
        return
    out().print(rows_table(["world"], ([w] for w in worlds)))


def observe(
    ctx: typer.Context,
    world: WorldOpt,
    kinds: KindsOpt = None,
    labels: LabelsOpt = None,
    flags: FlagsOpt = None,
    after: Annotated[
        str | None,
        typer.Option(
            "--after", metavar="ID", help="First deliver stored atoms after this id (resume)."
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", metavar="N", help="Stop after this many atoms.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", help="Stop after this many seconds."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", metavar="SECONDS", help="Poll interval, seconds.")
    ] = 0.2,
    as_json: JsonFlag = False,
) -> None:
    """Tail new atoms of a world as they arrive (Ctrl-C to stop).

    Prints one line per atom; with --json one JSON object per line.

    \b
    Examples:
      dwbase --api http://127.0.0.1:8080 observe --world demo
      dwbase --data-dir ./mem observe -w demo --after 0190f3c2-… --count 10 --json
    """
    if count is not None and count < 1:
        raise InvalidInputError("--count must be at least 1", field="count")
    seen = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    with open_backend(ctx) as db:
        handle = db.observe_start(world, filter=atom_filter(kinds, labels, flags), after=after)
        try:
            while count is None or seen < count:
                want = 100 if count is None else min(100, count - seen)
                batch: list[Atom] = db.observe_poll(handle, want)
                for atom in batch:
                    seen += 1
                    if as_json:
                        print_json_line(atom.to_wire())
                    else:
                        note(
                            f"[dim]{atom.timestamp}[/] [cyan]{atom.id}[/] {atom.kind} "
                            f"{payload_summary(atom, 100)}"
                        )
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if not batch:
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
        finally:
            db.observe_stop(handle)


def register(app: typer.Typer) -> None:
    app.command("remember")(remember)
    app.command("ask")(ask)
    app.command("replay")(replay)
    app.command("inspect")(inspect)
    app.command("list-worlds")(list_worlds)
    app.command("observe")(observe)

"""Output: rich tables for people, plain JSON for scripts, ``error[<code>]`` on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..model import Answer, Atom


def out() -> Console:
    # Built per call so a test runner that swaps sys.stdout is honoured. Off a terminal (a pipe,
    # a test) rich would squeeze tables into 80 columns; give them room instead.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, width=width)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(code: str, message: str, hint: str = "") -> None:
    console = err()
    console.print(Text.assemble((f"error[{code}]", "bold red"), ": ", message), soft_wrap=True)
    if hint:
        console.print(Text("  " + hint, style="dim"), soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    out().print(message, soft_wrap=True)


def payload_summary(atom: Atom, width: int = 60) -> str:
    """A one-line view of the payload: its ``text`` field if it has one, else the JSON."""
    try:
        payload = atom.payload
    except ValueError:
        payload = atom.payload_json
    if isinstance(payload, Mapping) and isinstance(payload.get("text"), str):
        text = str(payload["text"])
    else:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def atoms_table(atoms: Sequence[Atom], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("id", no_wrap=True, style="cyan", min_width=36)
    table.add_column("timestamp", no_wrap=True, min_width=20)
    table.add_column("kind", min_width=6)
    table.add_column("imp", justify="right", min_width=4)
    table.add_column("worker", min_width=6)
    table.add_column("labels", min_width=6)
    table.add_column("payload", min_width=20, ratio=1)
    for a in atoms:
        table.add_row(
            a.id,
            a.timestamp,
            a.kind,
            f"{a.importance:.2f}",
            escape(a.worker),
            escape(", ".join(a.labels)),
            escape(payload_summary(a)),
        )
    return table


def print_atoms(atoms: Sequence[Atom], *, as_json: bool, title: str | None = None) -> None:
    if as_json:
        print_json([a.to_wire() for a in atoms])
        return
    if not atoms:
        note("[dim]no atoms[/]")
        return
    console = out()
    console.print(atoms_table(atoms, title))
    console.print(f"[dim]{len(atoms)} atom(s)[/]")


def print_atom(atom: Atom, *, as_json: bool) -> None:
    if as_json:
        print_json(atom.to_wire())
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in atom.to_dict().items():
        if key == "payload_json":
            try:
                shown = json.dumps(atom.payload, ensure_ascii=False, indent=2)
            except ValueError:
                shown = atom.payload_json
            table.add_row("payload", escape(shown))
            continue
        if key == "links":
            shown = ", ".join(f"{x['kind']} → {x['target']}" for x in value) or "-"
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value) or "-"
        elif value is None:
            shown = "-"
        else:
            shown = str(value)
        table.add_row(key, escape(shown))
    out().print(table)


def print_answer(answer: Answer, *, as_json: bool) -> None:
    if as_json:
        print_json(answer.to_wire())
        return
    console = out()
    for w in answer.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    if not answer.hits:
        console.print(f"[dim]no atoms in {escape(answer.world)} match[/]")
        return
    table = Table(title=f"ask {answer.world}")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id", no_wrap=True, style="cyan", min_width=36)
    table.add_column("kind", min_width=6)
    table.add_column("payload", min_width=20, ratio=1)
    table.add_column("why", min_width=20)
    for i, hit in enumerate(answer.hits, 1):
        parts = sorted(hit.parts.items(), key=lambda kv: -abs(kv[1]))[:3]
        why = " ".join(f"{k}={v:+.2f}" for k, v in parts if v)
        table.add_row(
            str(i),
            f"{hit.score:.3f}",
            hit.atom.id,
            hit.atom.kind,
            escape(payload_summary(hit.atom)),
            why,
        )
    console.print(table)
    if answer.text:
        console.print(f"[bold]summary:[/] {escape(answer.text)}", soft_wrap=True)


def key_value_table(rows: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(escape(key), escape(str(value)))
    return table


def rows_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(escape("-" if v is None else str(v)) for v in row))
    return table

"""``dwbase storage rotate-key``, ``dwbase storage encryption`` and ``dwbase erase``: the keys
of an encrypted store (docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ..errors import InvalidInputError
from .atoms import JsonFlag
from .context import open_local
from .render import note, out, print_json


@contextmanager
def _bar(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    if not enabled:
        yield lambda done, total: None
        return
    progress = Progress(
        TextColumn("re-encrypting"), BarColumn(), MofNCompleteColumn(), console=out()
    )
    task = progress.add_task("re-encrypting", total=1)

    def report(done: int, total: int) -> None:
        progress.update(task, completed=done, total=max(total, 1))

    with progress:
        yield report


def rotate_key(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="KEY_ID", help="The new key's id (its key in DWBASE_KEY_<KEY_ID>)."
        ),
    ],
    batch: Annotated[
        int,
        typer.Option("--batch", metavar="N", min=1, help="Atoms re-encrypted per transaction."),
    ] = 500,
    as_json: JsonFlag = False,
) -> None:
    """Re-encrypt an encrypted store under a new key, online.

    New writes use the new key at once; the records are re-encrypted in short transactions,
    so a node on the same store keeps reading and writing meanwhile. Both keys must be
    available until it ends; afterwards the old key may be removed. Run it again to finish
    an interrupted rotation.

    \b
    Example:
      DWBASE_KEY_K2=$(openssl rand -hex 32) dwbase --data-dir ./mem storage rotate-key --to k2
    """
    with open_local(ctx, "storage rotate-key") as db, _bar(not as_json) as report:
        result = db.rotate_key(to, progress=report, batch=batch)
    if as_json:
        print_json(result)
        return
    retired = ", ".join(result["retired_keys"]) or "none"
    note(
        f"re-encrypted {result['reencrypted']} of {result['atoms']} atom(s) under key "
        f"{result['key_id']!r} ({result['subject_keys_rewrapped']} subject key(s) re-wrapped); "
        f"no longer needed: {retired}"
    )


def encryption(
    ctx: typer.Context,
    erasable: Annotated[
        list[str] | None,
        typer.Option(
            "--erasable-world",
            metavar="PATTERN",
            help="Make worlds matching PATTERN (demo, tenant:acme/*) erasable as a whole by "
            "`erase --world` from now on (repeatable).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Say whether the store is encrypted, under which key, and which worlds are erasable.

    \b
    Example:
      dwbase --data-dir ./mem storage encryption --erasable-world 'tenant:acme/*' --json
    """
    with open_local(ctx, "storage encryption") as db:
        if erasable:
            db.add_erasable_worlds(erasable)
        status = db.encryption_status()
    if as_json:
        print_json(status or {"cipher": None})
    elif status is None:
        note("not encrypted")
    else:
        worlds = ", ".join(status["erasable_worlds"]) or "none"
        note(
            f"{status['cipher']} under key {status['key_id']!r} (keys: "
            f"{', '.join(status['keys'])}); erasable worlds: {worlds}"
        )


def erase(
    ctx: typer.Context,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject", metavar="S", help="The subject (atoms labelled subject:S) to erase."
        ),
    ] = None,
    world: Annotated[
        str | None,
        typer.Option("--world", metavar="WORLD", help="An erasable world to erase as a whole."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Erase a subject, or a whole erasable world, by destroying its key (crypto-shredding).

    Atoms labelled subject:S (or written to a world made erasable with `storage encryption
    --erasable-world`) were encrypted under a key of their own; once it is destroyed they
    cannot be read from the store or from any backup made before. ask and replay skip them,
    and storage check counts them as erased. This cannot be undone.

    \b
    Examples:
      dwbase --data-dir ./mem erase --subject user-4711
      dwbase --data-dir ./mem erase --world tenant:acme/support
    """
    if (subject is None) == (world is None):
        raise InvalidInputError("give --subject S or --world WORLD (one of them)", field="subject")
    with open_local(ctx, "erase") as db:
        result = db.erase_subject(subject) if subject is not None else db.erase_world(world or "")
    if as_json:
        print_json(result)
        return
    what = f"subject {subject!r}" if subject is not None else f"world {world!r}"
    kept = result["not_erasable"]
    note(
        f"erased {what}: {result['keys_destroyed']} key(s) destroyed, {result['atoms']} "
        "atom(s) can no longer be read"
        + (f"; {kept} older atom(s) under the store key stay readable" if kept else "")
    )


def register(app: typer.Typer) -> None:
    from .admin import storage_app

    storage_app.command("rotate-key")(rotate_key)
    storage_app.command("encryption")(encryption)
    app.command("erase")(erase)

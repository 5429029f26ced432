"""The ``dwbase`` command: the Typer application, global options and the error model.

Every command is a translation: parse the options, call one engine/client method, print.
Errors never show a traceback: they print ``error[<code>]: message`` on stderr and exit 2 for
invalid input (including bad command lines) and 1 for everything else. The global options
(``--data-dir``, ``--api``, ``--token``) may also follow the command. ``remember`` exits 3
when its atom was held in quarantine (see ``atoms.EXIT_HELD``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import DWBaseError
from .context import State
from .groups import CONTEXT_SETTINGS
from .render import print_error

EXIT_INVALID = 2
EXIT_FAILURE = 1
INVALID_CODES = frozenset({"invalid_input", "payload_too_large"})
# Options of the `dwbase` group itself, each with a value; accepted after the command too.
GLOBAL_OPTIONS = ("--data-dir", "--api", "--token")
HINTS = {
    "unauthenticated": (
        "the node needs a token: give it with --token TOKEN or DWBASE_TOKEN (whoever runs "
        "the node makes one with `dwbase --data-dir DIR token create NAME ...`)"
    ),
}


def exit_code_for(code: str) -> int:
    return EXIT_INVALID if code in INVALID_CODES else EXIT_FAILURE


class DWBaseGroup(TyperGroup):
    """A Typer group whose ``main`` turns every failure into ``error[<code>]: ...``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if args is None:
            args = sys.argv[1:]
        try:
            rv = super().main(
                args=hoist_global_options(self, list(args)),
                prog_name=prog_name or "dwbase",
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except DWBaseError as exc:
            code = fail(exc.code, exc.message, HINTS.get(exc.code, ""), exit_code_for(exc.code))
            return _finish(code, standalone_mode)
        except typer.Abort:
            print_error("aborted", "interrupted")
            return _finish(130, standalone_mode)
        except KeyboardInterrupt:
            return _finish(130, standalone_mode)
        except (ConnectionError, TimeoutError) as exc:
            return _finish(fail("unavailable", str(exc), "", EXIT_FAILURE), standalone_mode)
        except OSError as exc:
            return _finish(fail("storage_error", str(exc), "", EXIT_FAILURE), standalone_mode)
        except Exception as exc:
            if not _is_usage_error(exc):
                raise
            return _finish(_usage_failure(exc), standalone_mode)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def hoist_global_options(group: Any, args: list[str]) -> list[str]:
    """Move ``--data-dir``/``--api``/``--token`` given after the command to before it.

    ``dwbase ask --world demo "q" --data-dir ./mem`` then means ``dwbase --data-dir ./mem ask
    ...``. An option the command defines itself, and the value of another option (``--text
    --api``), stay where they are.
    """
    i = 0
    while i < len(args) and args[i].startswith("-"):  # global options before the command
        i += 2 if args[i] in GLOBAL_OPTIONS else 1
    start = i
    # Typer's click may be its own copy: look at commands and options by their attributes.
    cmd = group
    while i < len(args) and args[i] in getattr(cmd, "commands", {}):
        cmd = cmd.commands[args[i]]
        i += 1
    if cmd is group:
        return args
    values: dict[str, int] = {}  # the command's own options -> how many values each takes
    for param in cmd.params:
        if param.param_type_name == "option":
            n = 0 if param.is_flag or param.count else param.nargs
            values.update(dict.fromkeys([*param.opts, *param.secondary_opts], n))
    moved: list[str] = []
    kept: list[str] = []
    rest = args[i:]
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            kept.extend(rest[j:])
            break
        name, eq, _ = arg.partition("=")
        if name in GLOBAL_OPTIONS and name not in values:
            step = 1 if eq else 2
            moved.extend(rest[j : j + step])
            j += step
            continue
        step = 1 + (values.get(name, 0) if not eq else 0)
        kept.extend(rest[j : j + step])
        j += step
    return args[:start] + moved + args[start:i] + kept


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"dwbase {__version__}\n")
        raise typer.Exit()


def _is_usage_error(exc: Exception) -> bool:
    # Typer's (vendored or upstream) click exceptions: a message formatter and an exit code.
    return callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code")


def _usage_failure(exc: Exception) -> int:
    message = str(exc.format_message())  # type: ignore[attr-defined]
    if type(exc).__name__ == "NoArgsIsHelpError":
        sys.stdout.write(message.rstrip() + "\n")  # `dwbase` alone: the help, not an error
        return 0
    ctx = getattr(exc, "ctx", None)
    hint = ""
    if ctx is not None and getattr(ctx, "command_path", None):
        hint = f"try '{ctx.command_path} --help' for the options and an example"
    exit_code = getattr(exc, "exit_code", EXIT_INVALID)
    return fail("invalid_input", message, hint, exit_code if exit_code else EXIT_INVALID)


def fail(code: str, message: str, hint: str, exit_code: int) -> int:
    print_error(code, message, hint)
    return exit_code


def _finish(code: int, standalone_mode: bool) -> int:
    if standalone_mode:
        sys.exit(code)
    return code


app = typer.Typer(
    cls=DWBaseGroup,
    name="dwbase",
    help=(
        "DWBase: a memory database for AI agents.\n\n"
        "Work on an embedded store with --data-dir DIR (or DWBASE_DATA_DIR), or on a running "
        "node with --api URL (or DWBASE_API) and --token (or DWBASE_TOKEN).\n\n"
        "\b\nExample:\n"
        "  dwbase --data-dir ./mem remember --world demo --text 'checkout latency 820ms'\n"
        "  dwbase --data-dir ./mem ask --world demo 'why is checkout slow?'"
    ),
    context_settings=CONTEXT_SETTINGS,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
)


@app.callback()
def _global(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="DWBASE_DATA_DIR",
            metavar="DIR",
            help="Directory of an embedded store (created by `remember`).",
            show_envvar=True,
        ),
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            envvar="DWBASE_API",
            metavar="URL",
            help="URL of a DWBase node.",
            show_envvar=True,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="DWBASE_TOKEN",
            metavar="TOKEN",
            help="Bearer token for the node.",
            show_envvar=True,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    ctx.obj = State(data_dir=data_dir, api=api, token=token)
    del version  # handled by its eager callback


def _register() -> None:
    from . import admin, atoms, component, keys, mcp, ops, perf, swarm

    atoms.register(app)
    admin.register(app)
    keys.register(app)
    ops.register(app)
    mcp.register(app)
    perf.register(app)
    component.register(app)
    swarm.register(app)


_register()


def command() -> Any:
    """The click command behind :data:`app` (for docs and tests)."""
    return typer.main.get_command(app)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``dwbase`` and ``python -m dwbase``."""
    command().main(args=list(argv) if argv is not None else None, prog_name="dwbase")

"""docs/cli.md is generated from the --help text and must be current."""

from __future__ import annotations

from pathlib import Path

from dwbase.cli.docs import render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_docs_cli_md_matches_the_help_text() -> None:
    assert DOC.exists(), "docs/cli.md is missing: run python scripts/gen_cli_docs.py"
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/cli.md is stale: run python scripts/gen_cli_docs.py"
    )


def test_every_command_appears_in_the_docs_with_its_example() -> None:
    text = render_markdown()
    for title in (
        "dwbase remember",
        "dwbase world policy",
        "dwbase backup restore",
        "dwbase deploy devnet",
        "dwbase token create",
        "dwbase storage check",
    ):
        section = text.split(f"## `{title}`", 1)[1].split("\n## ", 1)[0]
        assert "Example" in section, title

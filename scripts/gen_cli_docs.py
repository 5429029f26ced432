"""Write docs/cli.md from the CLI's --help text: ``python scripts/gen_cli_docs.py``."""

from __future__ import annotations

import sys
from pathlib import Path

from dwbase.cli.docs import render_markdown

TARGET = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def main() -> int:
    text = render_markdown()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

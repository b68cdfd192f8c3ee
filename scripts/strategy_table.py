"""Rewrite the README's strategy table from the registry (run after registering a strategy;
tests/test_readme.py fails until the README says what the registry holds)."""

from __future__ import annotations

import re
from pathlib import Path

from pgen.personalize.registry import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    import pgen.personalize  # noqa: F401  (registers the built-in strategies)

    text = README.read_text(encoding="utf-8")
    start = (
        "<!-- strategies-table: generated from pgen.personalize's registry; "
        "a test keeps it equal -->"
    )
    pattern = re.compile(re.escape(start) + r"\n.*?\n(<!-- /strategies-table -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit("README.md has no strategies-table markers")
    README.write_text(pattern.sub(lambda m: f"{start}\n{markdown_table()}\n{m.group(1)}", text))


if __name__ == "__main__":
    main()

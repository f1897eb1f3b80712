"""The accepted differences from PySpark, read from tests/fixtures/differential/ACCEPTED.md
(one file lists them all, with their reasons)."""

from __future__ import annotations

import os

__all__ = ["ACCEPTED_PATH", "FIXTURES", "accepted_differences"]

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "fixtures", "differential")
ACCEPTED_PATH = os.path.join(FIXTURES, "ACCEPTED.md")


def accepted_differences() -> dict[str, str]:
    """Case id -> reason, from the table rows of ACCEPTED.md (ids in backquotes)."""
    found: dict[str, str] = {}
    with open(ACCEPTED_PATH, encoding="utf-8") as text:
        for line in text:
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if len(cells) == 2 and cells[0].startswith("`") and cells[0].endswith("`"):
                found[cells[0][1:-1]] = cells[1]
    return found

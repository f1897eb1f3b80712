"""The chaos suite's Delta rows, in the fast slice: power cuts inside the Delta sink's
commit (a data file's fsync, a partition folder's, the table folder's, the log entry's,
``_delta_log``'s) and a restart, every expected row exactly once."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # the chaos package lives at the repository root, as bench does

from chaos import scenarios as sc  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def test_power_cuts_in_delta_commits_lose_and_duplicate_nothing(tmp_path):
    size = sc.Size(files=5, per_file=60, repeats=1)
    row = sc.power_loss_delta("delta", "stateless", 20261207, root=str(tmp_path), size=size)
    assert (row.runs, row.faults) == (3, 3), row.notes
    assert (row.lost, row.duplicated, row.silent) == (0, 0, 0), row.notes

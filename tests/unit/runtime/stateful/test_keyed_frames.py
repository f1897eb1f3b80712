"""KeyedFrames: a partition's rows grouped by key and converted to pandas once; each key
gets slices indexed from 0 that the user may modify without touching other keys' rows."""

from __future__ import annotations

import polars as pl

from unbounded.engine import group_state
from unbounded.engine.group_state import KeyedFrames


def _frames() -> KeyedFrames:
    rows = pl.DataFrame({"k": ["b", "a", "b", None, "a"], "x": [1, 2, 3, 4, 5]})
    return KeyedFrames.of(rows.with_columns(pl.col("k").alias("__g")), ["__g"])


def test_keys_in_first_appearance_order_with_their_rows_indexed_from_zero():
    grouped = _frames()
    assert grouped.keys["__g"].to_list() == ["b", "a", None]
    b, a, null = (grouped.frames(i) for i in range(3))
    assert [f.to_dict("list") for f in b] == [{"k": ["b", "b"], "x": [1, 3]}]
    assert list(a[0].index) == [0, 1] and a[0].x.tolist() == [2, 5]
    assert null[0].x.tolist() == [4]


def test_a_user_writing_into_its_slice_changes_no_other_key():
    grouped = _frames()
    mine = grouped.frames(0)[0]
    mine.loc[0, "x"] = -1
    mine["y"] = 0
    assert grouped.frames(0)[0].to_dict("list") == {"k": ["b", "b"], "x": [1, 3]}
    assert grouped.frame.x.tolist() == [1, 3, 2, 5, 4]


def test_large_groups_come_in_chunks_of_max_records(monkeypatch):
    monkeypatch.setattr(group_state, "MAX_RECORDS_PER_BATCH", 2)
    rows = pl.DataFrame({"__g": [1] * 5, "x": list(range(5))})
    chunks = KeyedFrames.of(rows, ["__g"]).frames(0)
    assert [c.x.tolist() for c in chunks] == [[0, 1], [2, 3], [4]]
    assert [list(c.index) for c in chunks] == [[0, 1], [0, 1], [0]]

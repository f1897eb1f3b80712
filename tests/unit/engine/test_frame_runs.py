"""frame_runs joins a user function's many small frames as pd.concat would, run by run."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pandas.testing as pdt
import pytest

from unbounded.engine.frame_runs import frame_runs


def _session(user: str, start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"user": [user], "start": [start], "n": [n], "avg": [n / 2]})


def test_frames_of_one_layout_become_one_frame_equal_to_concat() -> None:
    frames = [_session(f"u{i}", 1000 * i, i) for i in range(50)]
    [joined] = frame_runs(frames)
    pdt.assert_frame_equal(joined, pd.concat(frames, ignore_index=True))
    assert joined["user"].tolist()[:3] == ["u0", "u1", "u2"]
    assert joined["start"].tolist()[-1] == 49_000


def test_a_change_of_names_dtypes_or_column_order_starts_a_new_run() -> None:
    a = [_session("a", 1, 1), _session("b", 2, 2)]
    renamed = pd.DataFrame({"user": ["c"], "begin": [3], "n": [3], "avg": [1.5]})
    as_float = pd.DataFrame({"user": ["d"], "start": [4.0], "n": [4], "avg": [2.0]})
    reordered = pd.DataFrame({"start": [5], "user": ["e"], "n": [5], "avg": [2.5]})
    b = [_session("f", 6, 6), _session("g", 7, 7)]
    runs = frame_runs([*a, renamed, as_float, reordered, *b])
    assert [len(r) for r in runs] == [2, 1, 1, 1, 2]
    assert list(runs[1].columns) == ["user", "begin", "n", "avg"]
    assert runs[2]["start"].dtype == "float64"
    assert list(runs[3].columns) == ["start", "user", "n", "avg"]
    pdt.assert_frame_equal(runs[4], pd.concat(b, ignore_index=True))


def test_names_that_are_not_strings_and_extension_dtypes() -> None:
    numbered = [pd.DataFrame({0: [i], 1: [str(i)]}) for i in range(3)]
    [joined] = frame_runs(numbered)
    assert joined[0].tolist() == [0, 1, 2] and joined[1].tolist() == ["0", "1", "2"]
    nullable = [pd.DataFrame({"x": pd.array([i, None], dtype="Int64"),
                              "t": [dt.datetime(2026, 1, 1, i), None]}) for i in range(3)]
    [joined] = frame_runs(nullable)
    pdt.assert_frame_equal(joined, pd.concat(nullable, ignore_index=True))
    assert joined["x"].isna().tolist() == [False, True] * 3


def test_duplicate_names_and_non_frames_keep_their_meaning() -> None:
    dup = [pd.DataFrame([[1, 2]], columns=["a", "a"]), pd.DataFrame([[3, 4]], columns=["a", "a"])]
    [joined] = frame_runs(dup)
    assert joined.values.tolist() == [[1, 2], [3, 4]]
    odd = ["not a frame", _session("a", 1, 1)]
    runs = frame_runs(odd)
    assert runs[0] == "not a frame" and len(runs) == 2


@pytest.mark.parametrize("count", [1, 2])
def test_a_run_of_one_is_the_frame_itself(count: int) -> None:
    frames = [_session("a", 1, 1)] * count
    runs = frame_runs(frames)
    assert len(runs) == 1
    if count == 1:
        assert runs[0] is frames[0]
    else:
        assert runs[0]["user"].tolist() == ["a", "a"]

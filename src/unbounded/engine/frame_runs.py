"""Many small pandas DataFrames (a user function's output, one or a few per key) joined
into as few frames as possible, without ``pd.concat``.

A stateful user function returns a frame per key, often of one row; a batch closing a
million sessions returns a million frames. ``pd.concat`` costs about 150 us a frame in
pandas 3 (it unions indexes and checks dtypes frame by frame), and reading a frame's
column names as a tuple about 10 us (the names are an Arrow string array), which made
the output's conversion cost more than the user calls. Here consecutive frames whose
column names, dtypes and block layout are equal are stacked block by block (one
``np.concatenate`` or ``_concat_same_type`` per block for the whole run), and names are
compared as Arrow arrays: a few microseconds a frame. Equal dtypes make the stacked frame
equal to ``pd.concat``'s; whatever the fast path does not know (other pandas internals,
duplicate names, non-frames) takes ``pd.concat`` or stays alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["frame_runs"]


def frame_runs(frames: list[Any]) -> list[Any]:
    """``frames`` in order, each run of consecutive frames of one layout joined into one
    frame; anything that is not a DataFrame is passed through alone (the caller rejects
    it with the user-facing error)."""
    import pandas as pd

    keys = _layout_keys(frames)
    joined: list[Any] = []
    for _, run in itertools.groupby(zip(keys, frames, strict=True), key=lambda kf: kf[0]):
        same = [frame for _, frame in run]
        joined.append(same[0] if len(same) == 1 or not isinstance(same[0], pd.DataFrame)
                      else _stacked(same))
    return joined


def _layout_keys(frames: list[Any]) -> list[Hashable]:
    import pandas as pd

    names = _name_keys([f.columns if isinstance(f, pd.DataFrame) else None for f in frames])
    return [(name, _block_key(f)) if isinstance(f, pd.DataFrame) else ("alone", i)
            for i, (name, f) in enumerate(zip(names, frames, strict=True))]


def _block_key(frame: pd.DataFrame) -> Hashable:
    try:
        return tuple((block.dtype, block.mgr_locs.as_array.tobytes())
                     for block in frame._mgr.blocks)
    except AttributeError:  # not a BlockManager: compare dtypes only, pd.concat joins
        return ("dtypes", tuple(map(str, frame.dtypes)))


def _name_keys(columns: list[pd.Index | None]) -> list[Hashable]:
    """A key per frame, the previous frame's when the column names are equal (only
    consecutive frames are joined). pandas 3 keeps string names as an Arrow array, so
    two frames' names compare in C without being read into Python."""
    keys: list[Hashable] = []
    previous: Any = None
    for names in map(_names, columns):
        if names is None or not _same_names(names, previous):
            keys.append(len(keys))
        else:
            keys.append(keys[-1])
        previous = names
    return keys


def _names(columns: pd.Index | None) -> Any:
    if columns is None:
        return None
    arrow = getattr(getattr(columns, "_values", None), "_pa_array", None)
    return arrow if isinstance(arrow, pa.ChunkedArray) else tuple(columns)


def _same_names(names: Any, previous: Any) -> bool:
    if isinstance(names, pa.ChunkedArray):
        return isinstance(previous, pa.ChunkedArray) and names.equals(previous)
    return isinstance(previous, tuple) and names == previous


def _stacked(run: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of one layout as one, block by block; ``pd.concat`` where that fails."""
    import pandas as pd

    first = run[0]
    names = list(first.columns)
    if len(set(names)) != len(names):
        return pd.concat(run, ignore_index=True)
    try:
        columns: dict[int, Any] = {}
        for j, block in enumerate(first._mgr.blocks):
            values = [frame._mgr.blocks[j].values for frame in run]
            if isinstance(values[0], np.ndarray):  # 2-D: a row per column of the block
                stacked = list(np.concatenate(values, axis=1))
            else:
                stacked = [type(values[0])._concat_same_type(values)]
            columns.update(zip(block.mgr_locs.as_array.tolist(), stacked, strict=True))
        return pd.DataFrame({name: columns[i] for i, name in enumerate(names)}, copy=False)
    except (AttributeError, TypeError, ValueError):
        return pd.concat(run, ignore_index=True)

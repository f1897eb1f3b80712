"""Reading back what a state store wrote, for the state tests: a delta file's rows and a
frame's rows, each in an order that does not depend on how the store laid them out."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from unbounded.state.files import StateFileEnvelope

__all__ = ["delta_rows", "sorted_rows"]


def delta_rows(root: Path, name: str, version: int) -> list[dict[str, object]]:
    """The rows of ``<root>/<name>/0/0/<version>.delta``, upserts before deletes (the
    ``__op`` column), each group in a fixed order (the store keeps its own key order)."""
    path = root / name / "0" / "0" / f"{version}.delta"
    body = pa.py_buffer(path.read_bytes()[StateFileEnvelope.SIZE:])
    rows = pa.ipc.open_file(body).read_all().to_pylist()
    return sorted(rows, key=lambda r: (r["__op"], repr(r)))


def sorted_rows(frame: pl.DataFrame | pa.Table, columns: list[str]) -> list[tuple[object, ...]]:
    """``columns`` of every row, sorted."""
    df = frame if isinstance(frame, pl.DataFrame) else pl.from_arrow(frame)
    assert isinstance(df, pl.DataFrame)
    return sorted(df.select(columns).rows(), key=repr)

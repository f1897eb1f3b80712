"""A state frame kept in pieces, one per value of the key column eviction reads.

A windowed aggregation evicts by its window column alone (``window + duration <=
watermark``), and a batch updates the keys of one or two windows. Kept as one frame,
every batch copies all surviving rows to drop the closed window's and to replace the
updated ones; kept per window, eviction drops whole pieces and a batch rebuilds only
the pieces it updates. The frame the store reports is the pieces concatenated without
a copy (their chunks appended), so every other operation sees the same rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple

import polars as pl

__all__ = ["MAX_PIECES", "MAX_PIECE_CHUNKS", "Pieces", "piece_column"]

MAX_PIECES = 128  # distinct values of the column beyond which the state stays whole
MAX_PIECE_CHUNKS = 8  # chunks of one piece beyond which its rebuild rechunks it


def piece_column(evict: pl.Expr | None, schema: pl.Schema, keys: Sequence[str]) -> str | None:
    """The key column ``evict`` reads alone, when it is an integer or temporal one (a
    tumbling window's start): the column a state can be split by so that the predicate
    holds for all or none of a piece's rows. None otherwise."""
    if evict is None:
        return None
    roots = set(evict.meta.root_names())
    if len(roots) != 1:
        return None
    (name,) = roots
    dtype = schema.get(name)
    if name not in keys or dtype is None or not (dtype.is_integer() or dtype.is_temporal()):
        return None
    return name


class Pieces(NamedTuple):
    """``frame``'s rows split by the values of ``column``: ``parts`` maps each value to
    its rows (a frame with one value in ``column``); ``frame`` is the parts concatenated
    in the map's order, so it holds exactly their rows."""

    column: str
    parts: dict[Hashable, pl.DataFrame]
    frame: pl.DataFrame

    @classmethod
    def split(cls, frame: pl.DataFrame, column: str) -> Pieces | None:
        """``frame`` in pieces by ``column`` (one copy of its rows), or None when it has
        more than ``MAX_PIECES`` values there (then pieces would cost more than they save)."""
        if frame.get_column(column).n_unique() > MAX_PIECES:
            return None
        parts = {k[0]: p for k, p in frame.partition_by(column, as_dict=True).items()}
        return cls.of(column, parts, frame.clear())

    @classmethod
    def of(cls, column: str, parts: dict[Hashable, pl.DataFrame], empty: pl.DataFrame
           ) -> Pieces:
        """The pieces ``parts`` (none empty) and their concatenation (``empty`` if none)."""
        frame = pl.concat(list(parts.values()), rechunk=False) if parts else empty
        return cls(column, parts, frame)

    def values_of(self, rows: pl.DataFrame) -> list[Hashable]:
        """The distinct values of ``column`` among ``rows`` (a batch's windows)."""
        return rows.get_column(self.column).unique().to_list()

    def split_rows(self, rows: pl.DataFrame, values: list[Hashable]
                   ) -> dict[Hashable, pl.DataFrame]:
        """``rows`` by their value of ``column``, ``values`` being those values: one
        filter per value, several times faster than ``partition_by`` for the few
        values of a batch; no copy for one value."""
        if len(values) <= 1:
            return dict.fromkeys(values, rows)
        column = rows.get_column(self.column)
        parts = {v: rows.filter(column.is_null() if v is None else column == v)
                 for v in values}
        return {v: p for v, p in parts.items() if p.height}

    def probe(self) -> pl.DataFrame:
        """One row per piece holding its value of ``column``, in the order of ``parts``:
        a row-wise predicate over ``column`` alone selects all of a piece's rows or none,
        so it is evaluated over this frame instead of the state's rows."""
        dtype = self.frame.schema[self.column]
        return pl.DataFrame({self.column: pl.Series(list(self.parts), dtype=dtype)})


def compact(piece: pl.DataFrame) -> pl.DataFrame:
    """``piece`` in one chunk once it has more than ``MAX_PIECE_CHUNKS``: a piece that a
    batch updates gains the merged rows as chunks on every batch."""
    return piece.rechunk() if piece.n_chunks() > MAX_PIECE_CHUNKS else piece

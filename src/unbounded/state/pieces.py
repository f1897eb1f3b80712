"""A state frame kept in pieces, one per value of the key column eviction reads.

A windowed aggregation evicts by its window column alone (``window + duration <=
watermark``), and a batch updates the keys of one or two windows. Kept as one frame,
every batch copies all surviving rows to drop the closed window's and to replace the
updated ones; kept per window, eviction drops whole pieces and a batch rebuilds only
the pieces it updates. The frame the store reports is the pieces concatenated without
a copy (their chunks appended), so every other operation sees the same rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np
import polars as pl

__all__ = ["MAX_PIECES", "MAX_PIECE_CHUNKS", "Pieces", "Replaced", "filtered", "piece_column",
           "updated"]

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
        parts = {v: filtered(rows, column.is_null() if v is None else column == v)
                 for v in values}
        return {v: p for v, p in parts.items() if p.height}

    def probe(self) -> pl.DataFrame:
        """One row per piece holding its value of ``column``, in the order of ``parts``:
        a row-wise predicate over ``column`` alone selects all of a piece's rows or none,
        so it is evaluated over this frame instead of the state's rows."""
        dtype = self.frame.schema[self.column]
        return pl.DataFrame({self.column: pl.Series(list(self.parts), dtype=dtype)})


class Replaced(NamedTuple):
    """The rows of a piece (positions, ascending) a batch's merged rows replace, and
    which merged row replaces each (None: not known)."""

    at: np.ndarray
    by: np.ndarray | None


def updated(piece: pl.DataFrame, merged: pl.DataFrame, replaced: Replaced,
            keys: Sequence[str]) -> pl.DataFrame:
    """``piece`` with ``merged`` (its window's rows) in: where the merged row of each
    replaced row is known and the value columns are numbers without NULLs, its values
    are written over that row's (a copy of the value columns; the key columns are
    shared) and the other merged rows appended; else the replaced rows are filtered
    out and all merged rows appended. The same rows either way."""
    if replaced.by is not None and all(
            piece.schema[c] in _WRITABLE and not piece.get_column(c).null_count()
            for c in piece.columns if c not in keys):
        new = np.ones(merged.height, dtype=np.bool_)
        new[replaced.by] = False
        chunks = piece.get_column(keys[0]).chunk_lengths()
        written = [c if c.name in keys else _written(c, replaced, merged.get_column(c.name),
                                                     chunks)
                   for c in piece.get_columns()]
        return compact(pl.concat([pl.DataFrame(written), filtered(merged, pl.Series(new))],
                                 rechunk=False))
    if replaced.at.size:
        kept = np.ones(piece.height, dtype=np.bool_)
        kept[replaced.at] = False
        piece = filtered(piece, pl.Series(kept))
    return compact(pl.concat([piece, merged], rechunk=False))


_WRITABLE = (pl.Int64, pl.Float64)


def _written(column: pl.Series, replaced: Replaced, values: pl.Series, chunks: list[int]
             ) -> pl.Series:
    """A copy of ``column`` with ``values`` written over the ``replaced`` rows, in
    ``chunks`` of the key columns' lengths (views of one array): a frame whose columns
    are chunked alike converts to Arrow (a snapshot) without a copy."""
    out = column.to_numpy(writable=True)
    out[replaced.at] = values.to_numpy()[replaced.by]
    bounds = np.cumsum([0, *chunks])
    return pl.concat([pl.Series(column.name, out[a:b], dtype=column.dtype)
                      for a, b in itertools.pairwise(bounds)], rechunk=False)


def filtered(frame: pl.DataFrame, mask: pl.Series) -> pl.DataFrame:
    """``frame.filter(mask)`` column by column: the same rows without a Polars query,
    which in a running query can wait behind the streaming engine's read-ahead scans."""
    return pl.DataFrame([column.filter(mask) for column in frame.get_columns()])


def compact(piece: pl.DataFrame) -> pl.DataFrame:
    """``piece`` in one chunk once it has more than ``MAX_PIECE_CHUNKS``: a piece that a
    batch updates gains the merged rows as chunks on every batch."""
    return piece.rechunk() if piece.n_chunks() > MAX_PIECE_CHUNKS else piece

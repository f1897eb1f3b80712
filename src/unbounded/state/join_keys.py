"""How a stream-stream join's stored rows give Spark's join key, for the state reader.

Our join keeps each side's rows keyed by a row id (see ``runtime/stateful/join.py``);
Spark keys them by the join keys, and its ``statestore`` reader with ``joinSide`` returns
those as ``key`` (``struct<field0, field1, ...>``, one field per equi-join key, typed as
the key expression after both sides were coerced to a common type). The join records
here, once, how to compute that key from a stored row, so the reader can give Spark's
shape without a query plan.

Format of ``<state>/<operator>/_metadata/join-keys`` (JSON, written at the join's first
start; version 1, a reader rejects any other)::

    {"version": 1, "polars": "2.1.0",
     "sides": {"left":  {"renames": {}, "keys": [{"column": "id", "expr": "<base64>"}]},
               "right": {"renames": {"id": "id_r"},
                         "keys": [{"column": null, "expr": "<base64>"}]}}}

``renames`` maps a side's stored column names to the names its key expressions use;
``column`` names the stored column when the key is that column as it is, else null;
``expr`` is the key as Polars serialises an expression (read only when ``column`` is
null: Polars does not promise to read another release's expressions).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from unbounded.checkpoint.checksum import read_checked_json, write_checked
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import AnalysisException, CheckpointConflictError, CheckpointCorruptError

__all__ = ["JoinKeysFile", "JoinSideKeys"]


@dataclass(frozen=True)
class JoinSideKeys:
    """One side's key expressions, over its columns renamed by ``renames``."""

    keys: tuple[pl.Expr, ...]
    renames: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"renames": dict(self.renames), "keys": [_key_json(k) for k in self.keys]}

    def key_frame(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Spark's key columns (``field0``...) of stored ``rows``."""
        renamed = rows.rename(dict(self.renames), strict=False)
        return renamed.select([k.alias(f"field{i}") for i, k in enumerate(self.keys)])


def _key_json(key: pl.Expr) -> dict[str, Any]:
    column = key.meta.output_name() if key.meta.is_column() else None
    return {"column": column, "expr": base64.b64encode(key.meta.serialize()).decode()}


class JoinKeysFile:
    """``<state_root>/<operator>/_metadata/join-keys`` (see the module docstring)."""

    VERSION = 1

    def __init__(self, state_root: str, operator_id: int) -> None:
        self.path = os.path.join(state_root, str(operator_id), "_metadata", "join-keys")

    def write_once(self, sides: Mapping[str, JoinSideKeys]) -> None:
        """Record the sides' keys at the first start; later starts keep the first record
        (a changed join cannot reuse the state anyway: its rows sit in other partitions)."""
        if storage_for(self.path).exists(self.path):
            return
        doc = {"version": self.VERSION, "polars": pl.__version__,
               "sides": {name: side.to_json() for name, side in sides.items()}}
        try:
            write_checked(self.path, json.dumps(doc, indent=1).encode())
        except CheckpointConflictError:
            return  # written by another run at the same moment: the same content

    def read(self, side: str) -> JoinSideKeys | None:
        """The keys of ``side``, or None for a checkpoint written before this file."""
        if not storage_for(self.path).exists(self.path):
            return None
        doc = self._document()
        raw = doc["sides"].get(side)
        if raw is None:
            raise CheckpointCorruptError(f"{self.path} has no join side {side!r}.")
        return JoinSideKeys(tuple(self._key(k, doc.get("polars")) for k in raw["keys"]),
                            dict(raw.get("renames") or {}))

    def _document(self) -> dict[str, Any]:
        doc: dict[str, Any] = read_checked_json(self.path, "join keys JSON")
        version = doc.get("version") if isinstance(doc, dict) else None
        if version != self.VERSION or not isinstance(doc.get("sides"), dict):
            raise CheckpointCorruptError(
                f"{self.path} has join keys format version {version!r}; this version of "
                f"unbounded reads version {self.VERSION}. Use the unbounded release that "
                "wrote the checkpoint.")
        return doc

    def _key(self, raw: Mapping[str, Any], written_by: str | None) -> pl.Expr:
        if raw.get("column"):
            return pl.col(str(raw["column"]))
        try:
            return pl.Expr.deserialize(io.BytesIO(base64.b64decode(raw["expr"])))
        except (binascii.Error, KeyError, TypeError, pl.exceptions.PolarsError,
                ValueError) as e:
            raise AnalysisException(
                f"[STDS_FAILED_TO_READ_STATE_SCHEMA] The join key recorded in {self.path} "
                f"was written by Polars {written_by} and this Polars {pl.__version__} cannot "
                f"read it ({e}). Read the side with storeName='left'/'right' (keyed by row), "
                "or install the Polars release the checkpoint was written with.") from e


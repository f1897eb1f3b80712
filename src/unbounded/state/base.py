"""The contract of versioned state stores, and the state schema file they share.

A state store holds the rows one stateful operator keeps for one partition between
micro-batches. It is addressed by :class:`StateStoreId` (state root, operator id,
partition id) and versioned: batch N opens the version its predecessor committed, reads
and changes it, and ``commit()`` makes the next version durable. Version 0 is the empty
state and needs no files. Rows are columnar: a fixed key schema and value schema, both
Arrow, given when the provider is created.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.checksum import read_checked_json, write_checked
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import AnalysisException, CheckpointConflictError, CheckpointCorruptError

__all__ = [
    "FOUND_COLUMN",
    "OLD_SUFFIX",
    "OP_COLUMN",
    "RESERVED_COLUMNS",
    "MergeFold",
    "StateSchema",
    "StateSchemaFile",
    "StateStore",
    "StateStoreConf",
    "StateStoreId",
    "StateStoreMetrics",
    "StateStoreProvider",
    "StateStoreProviderFactory",
    "SupportsCombineFold",
    "SupportsMergeFold",
    "conform",
]

FOUND_COLUMN = "__found"
OP_COLUMN = "__op"
RESERVED_COLUMNS = frozenset({FOUND_COLUMN, OP_COLUMN})
OLD_SUFFIX = "__old"  # a stored value column beside the new one, in a merge expression


@dataclass(frozen=True)
class StateStoreId:
    """Where one operator partition keeps its state: ``<root>/<operator_id>/<partition_id>``,
    or ``.../<partition_id>/<store_name>`` for an operator with several stores per
    partition (a join keeps one per side, as Spark's ``left-...``/``right-...`` stores).

    ``root`` is the query's state folder (``<checkpoint>/state``).

    >>> StateStoreId("/ckpt/state", 0, 3).path
    '/ckpt/state/0/3'
    >>> StateStoreId("/ckpt/state", 1, 0, "left").path
    '/ckpt/state/1/0/left'
    """

    root: str
    operator_id: int
    partition_id: int
    store_name: str = ""

    @property
    def operator_path(self) -> str:
        return os.path.join(self.root, str(self.operator_id))

    @property
    def path(self) -> str:
        partition = os.path.join(self.operator_path, str(self.partition_id))
        return os.path.join(partition, self.store_name) if self.store_name else partition


@dataclass(frozen=True)
class StateSchema:
    """The key and value schemas of one operator's state; key and value names are
    distinct, the key is not empty, and the names in ``RESERVED_COLUMNS`` are not used.

    >>> s = StateSchema(pa.schema([("k", pa.int64())]), pa.schema([("n", pa.int64())]))
    >>> s.row_schema.names
    ['k', 'n']
    """

    key: pa.Schema
    value: pa.Schema

    def __post_init__(self) -> None:
        names = [*self.key.names, *self.value.names]
        if not self.key.names:
            raise ValueError("a state key schema needs at least one column")
        if len(set(names)) != len(names):
            raise ValueError(f"state key and value column names must be distinct: {names}")
        if RESERVED_COLUMNS & set(names):
            raise ValueError(f"state columns may not use the names {sorted(RESERVED_COLUMNS)}")

    @property
    def key_names(self) -> list[str]:
        return list(self.key.names)

    @property
    def value_names(self) -> list[str]:
        return list(self.value.names)

    @property
    def row_schema(self) -> pa.Schema:
        return pa.schema([*self.key, *self.value])


class StateSchemaFile:
    """``<root>/<operator_id>/_metadata/schema``: the state schema an operator was
    started with, so a changed query cannot silently misread old state.

    Format (JSON, ``version`` 1; a reader rejects any other version)::

        {"version": 1,
         "keySchema": [{"name": "k", "type": "int64", "nullable": true}],
         "valueSchema": [{"name": "count", "type": "int64", "nullable": true}]}

    ``type`` is Arrow's type string. Nullability is recorded but not compared.
    """

    VERSION = 1

    def __init__(self, store_id: StateStoreId) -> None:
        name = f"schema-{store_id.store_name}" if store_id.store_name else "schema"
        self.path = os.path.join(store_id.operator_path, "_metadata", name)

    @staticmethod
    def _fields(schema: pa.Schema) -> list[dict[str, Any]]:
        return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]

    def to_json(self, schema: StateSchema) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "keySchema": self._fields(schema.key),
            "valueSchema": self._fields(schema.value),
        }

    def read(self) -> dict[str, Any] | None:
        store = storage_for(self.path)
        if not store.exists(self.path):
            return None
        doc = read_checked_json(self.path, "state schema JSON")
        if not isinstance(doc, dict) or doc.get("version") != self.VERSION:
            version = doc.get("version") if isinstance(doc, dict) else None
            raise CheckpointCorruptError(
                f"{self.path} has state schema format version {version!r}; this version "
                f"of unbounded reads version {self.VERSION}. Use a matching unbounded "
                "release or a new checkpoint location."
            )
        return doc

    def write_or_check(self, schema: StateSchema) -> None:
        """Record ``schema`` on first use; afterwards reject a different one."""
        existing = self.read()
        if existing is None:
            try:
                write_checked(self.path, json.dumps(self.to_json(schema), indent=1).encode())
                return
            except CheckpointConflictError:  # another partition of this operator won
                existing = self.read()
        assert existing is not None
        self._check(existing, schema)

    def _check(self, existing: dict[str, Any], schema: StateSchema) -> None:
        changes = [
            *_diff("key", existing["keySchema"], self._fields(schema.key)),
            *_diff("value", existing["valueSchema"], self._fields(schema.value)),
        ]
        if changes:
            raise AnalysisException(
                "The state schema of this query changed since the checkpoint was written: "
                + "; ".join(changes)
                + ". State written with the old schema cannot be read with the new one. "
                "Start the changed query with a new checkpoint location.",
                error_class="STATE_STORE_SCHEMA_NOT_COMPATIBLE",
            )


def _diff(kind: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    old_types = {f["name"]: f["type"] for f in old}
    new_types = {f["name"]: f["type"] for f in new}
    out = [f"{kind} column {n!r} was removed" for n in old_types if n not in new_types]
    out += [f"{kind} column {n!r} ({t}) was added" for n, t in new_types.items()
            if n not in old_types]
    out += [
        f"{kind} column {n!r} changed type from {old_types[n]} to {t}"
        for n, t in new_types.items()
        if n in old_types and old_types[n] != t
    ]
    if not out and list(old_types) != list(new_types):
        out.append(f"{kind} columns were reordered from {list(old_types)} to {list(new_types)}")
    return out


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns named by ``schema``, in its order, cast to its types."""
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise AnalysisException(
            f"State rows are missing the columns {missing}; expected {schema.names}, "
            f"got {table.column_names}.",
            error_class="STATE_STORE_MISSING_COLUMNS",
        )
    return table.select(schema.names).cast(schema)


@dataclass(frozen=True)
class StateStoreConf:
    """State store settings, parsed once from the session conf (Spark's names)."""

    provider_class: str = "memory"
    min_deltas_for_snapshot: int = 10
    min_versions_to_retain: int = 100
    max_versions_in_memory: int = 2
    local_dir: str | None = None  # working folder of the disk provider; a temp dir if None

    _KEYS = {
        "spark.sql.streaming.stateStore.providerClass": "provider_class",
        "spark.sql.streaming.stateStore.minDeltasForSnapshot": "min_deltas_for_snapshot",
        "spark.sql.streaming.minBatchesToRetain": "min_versions_to_retain",
        "spark.sql.streaming.maxBatchesToRetainInMemory": "max_versions_in_memory",
    }

    @classmethod
    def from_spark_conf(cls, conf: Mapping[str, str]) -> StateStoreConf:
        """Build from ``spark.sql.streaming.*`` settings; unknown keys are ignored.

        >>> StateStoreConf.from_spark_conf(
        ...     {"spark.sql.streaming.stateStore.minDeltasForSnapshot": "5"}
        ... ).min_deltas_for_snapshot
        5
        """
        kwargs: dict[str, Any] = {}
        for key, field_name in cls._KEYS.items():
            if key in conf:
                raw = conf[key]
                kwargs[field_name] = raw if field_name == "provider_class" else int(raw)
        return cls(**kwargs)

    def __post_init__(self) -> None:
        for name in ("min_deltas_for_snapshot", "min_versions_to_retain"):
            if getattr(self, name) < 1:
                raise ValueError(f"state store setting {name} must be at least 1")


@dataclass(frozen=True)
class StateStoreMetrics:
    """What one store did in one version; ``to_dict`` uses Spark's progress names."""

    num_rows_total: int
    num_rows_updated: int
    num_rows_removed: int
    memory_used_bytes: int
    commit_time_ms: int

    def to_dict(self) -> dict[str, int]:
        return {
            "numRowsTotal": self.num_rows_total,
            "numRowsUpdated": self.num_rows_updated,
            "numRowsRemoved": self.num_rows_removed,
            "memoryUsedBytes": self.memory_used_bytes,
            "commitTimeMs": self.commit_time_ms,
        }


@runtime_checkable
class StateStore(Protocol):
    """One version of one operator partition's state, open for one batch.

    Invariants: each key is present at most once; reads see this store's own earlier
    writes; nothing is durable until ``commit()``, which returns ``version + 1`` and
    makes that version recoverable by a fresh provider; ``abort()`` leaves every
    committed version as it was. After ``commit()`` or ``abort()`` the store is closed.
    """

    @property
    def version(self) -> int:
        """The version this store was opened at."""
        ...

    @property
    def schema(self) -> StateSchema: ...

    def lookup(self, keys: pa.Table) -> pa.Table:
        """For each row of ``keys`` (in order, duplicates kept): the key columns, the value
        columns (null where the key is absent) and a boolean ``FOUND_COLUMN``."""
        ...

    def upsert(self, rows: pa.Table, *, distinct: bool = False, new_keys: bool = False
               ) -> None:
        """Insert or replace rows (key and value columns); a later row for one key wins.
        ``distinct=True`` is the caller's promise that each key appears once (e.g. rows
        of a group-by), which spares the de-duplication; ``new_keys=True`` that no key
        is stored yet (rows under fresh ids), which spares the match with stored rows."""
        ...

    def delete(self, keys: pa.Table) -> None:
        """Remove the given keys; absent keys are ignored."""
        ...

    def evict(self, predicate: pl.Expr) -> pa.Table:
        """Remove and return every row for which ``predicate`` (a Polars expression over
        the key and value columns) is true; a null result keeps the row."""
        ...

    def scan(self) -> pa.Table:
        """All rows, key columns then value columns, in no particular order."""
        ...

    def commit(self) -> int:
        """Make the changes durable as version ``version + 1`` and return that number."""
        ...

    def abort(self) -> None:
        """Discard the changes; idempotent."""
        ...

    @property
    def metrics(self) -> StateStoreMetrics: ...


@dataclass(frozen=True)
class MergeFold:
    """What :meth:`SupportsMergeFold.merge_fold` did: the rows it upserted and the rows
    it evicted (key and value columns, Polars frames, in no particular order)."""

    merged: pl.DataFrame
    evicted: pl.DataFrame


@runtime_checkable
class SupportsMergeFold(Protocol):
    """A store that folds a batch into state in one pass: the streaming aggregation's
    lookup, merge, upsert and eviction, without a round trip through Arrow per step.

    Invariant: ``merge_fold(rows, merge, evict)`` has exactly the effect (on the store,
    its delta and its metrics) of ``lookup`` of ``rows``' keys, ``upsert(merged,
    distinct=True)`` and then ``evict(evict)`` (skipped when ``evict`` is None), where
    ``merged`` is ``rows``' keys and the ``merge`` expressions evaluated over ``rows``'
    value columns, the stored values under their names plus ``OLD_SUFFIX`` and
    ``FOUND_COLUMN``. ``rows`` holds each key at most once, in the key and value columns
    of the state schema; each ``merge`` expression is named after one value column and
    every value column has one.
    """

    def merge_fold(self, rows: pl.DataFrame, merge: Sequence[pl.Expr],
                   evict: pl.Expr | None) -> MergeFold:
        """Merge ``rows`` into state, evict, and return what changed."""
        ...


@runtime_checkable
class SupportsCombineFold(Protocol):
    """A store that folds a batch's partial rows, several per key, into state in one
    pass, grouping them with the stored rows of their keys.

    Invariant: when ``combine`` (aggregations over a group of rows in the state's
    columns, one named after each value column) gives the same buffers over a stored
    row and the batch's rows of its key as the aggregation's merge of the stored row
    with the batch's rows combined, ``combine_fold(rows, combine, evict)`` has exactly
    the effect of ``merge_fold`` of ``rows`` grouped by key with ``combine``; or it
    returns None and changes nothing (the caller then combines and merges).
    """

    def combine_fold(self, rows: pl.DataFrame, combine: Sequence[pl.Expr],
                     evict: pl.Expr | None) -> MergeFold | None:
        """Combine ``rows`` with the stored rows of their keys, evict, return what
        changed; or None when this store cannot for these rows."""
        ...


@runtime_checkable
class StateStoreProvider(Protocol):
    """Opens versions of one operator partition's state and keeps its files tidy.

    Built as ``cls(StateStoreId, StateSchema, StateStoreConf)``; construction records the
    schema or raises ``AnalysisException`` if it differs from the recorded one.
    Invariants: ``get_store(v)`` returns exactly the state committed as version ``v``
    (also after a restart); ``maintenance`` never removes what is needed to recover the
    latest ``min_versions_to_retain`` versions. A provider serves one task at a time.
    """

    @property
    def store_id(self) -> StateStoreId: ...

    def get_store(self, version: int) -> StateStore:
        """Open committed ``version`` for changes; raises ``CheckpointCorruptError`` if
        that version cannot be recovered from the files."""
        ...

    def latest_version(self) -> int:
        """The newest committed version on disk (0 if none)."""
        ...

    def maintenance(self, min_versions_to_retain: int | None = None) -> None:
        """Delete files no longer needed; ``None`` uses the conf's setting."""
        ...

    def close(self) -> None:
        """Release memory and local resources; committed state stays on disk."""
        ...


StateStoreProviderFactory = Callable[
    [StateStoreId, StateSchema, "StateStoreConf | None"], StateStoreProvider
]
"""What a provider class is: ``cls(store_id, schema, conf)``."""

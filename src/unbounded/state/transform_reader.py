"""The ``statestore`` reader's view of a ``transformWithState(InPandas)`` operator: one
state variable (``stateVarName``) or the registered timers (``readRegisteredTimers``),
in the columns Spark 4 gives (checked against PySpark 4.3)::

    value state              key, value, partition_id
    list state               key, list_element, partition_id     (one row per element)
      flattenCollectionTypes=false: key, list_value (array), partition_id
    map state                key, user_map_key, user_map_value, partition_id
      flattenCollectionTypes=false: key, map_value (map), partition_id
    timers                   key, expiration_timestamp_ms, partition_id

With a TTL each value is ``struct<value: struct<...>, ttlExpirationMs: bigint>``. ``key``
is the grouping key struct. Our stores hold one row per grouping key (``__value``;
``__values`` with ``__expires_ms`` per element; map ``__keys``; ``__timers``, see
``runtime/stateful/transform_state.py``): this module reshapes one partition's rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from unbounded.state.reader_errors import conflict_options, invalid_option
from unbounded.state.transform_meta import StateVariableInfo, VariableType

__all__ = [
    "parse_transform_options",
    "timers_table",
    "variable_table",
]

VALUE, VALUES, KEYS, EXPIRES, TIMERS = "__value", "__values", "__keys", "__expires_ms", "__timers"


def _boolean(opts: Mapping[str, str], key: str, name: str, default: bool) -> bool:
    raw = opts.get(key)
    if raw is None:
        return default
    if raw.strip().lower() not in ("true", "false"):
        raise invalid_option(name, "Boolean value is expected")
    return raw.strip().lower() == "true"


def parse_transform_options(opts: Mapping[str, str]) -> tuple[str | None, bool, bool]:
    """``stateVarName``, ``readRegisteredTimers`` and ``flattenCollectionTypes`` from
    lower-cased option names, with Spark's defaults and checks."""
    name = opts.get("statevarname")
    timers = _boolean(opts, "readregisteredtimers", "readRegisteredTimers", False)
    flatten = _boolean(opts, "flattencollectiontypes", "flattenCollectionTypes", True)
    if timers and name is not None:
        raise conflict_options("readRegisteredTimers", "stateVarName")
    return (None if name is None else name.strip()), timers, flatten


def _column(rows: pa.Table, name: str) -> pa.Array:
    return rows.column(name).combine_chunks()


def _key(rows: pa.Table, key_names: list[str]) -> pa.StructArray:
    return pa.StructArray.from_arrays([_column(rows, n) for n in key_names], names=key_names)


def _partition(n: int, partition: int) -> pa.Array:
    return pa.array([partition] * n, pa.int32())


def _stamped(values: pa.Array, expires: pa.Array, ttl: bool) -> pa.Array:
    """A value as Spark shows it: itself, or with a TTL ``{value, ttlExpirationMs}``."""
    if not ttl:
        return values
    return pa.StructArray.from_arrays([values, expires], names=["value", "ttlExpirationMs"])


def _offsets(lists: pa.Array) -> pa.Array:
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    return pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())


def _parents(rows: pa.Table, column: str) -> pa.Array:
    return pc.list_parent_indices(_column(rows, column))


def variable_table(variable: StateVariableInfo, rows: pa.Table, key_names: list[str],
                   partition: int, flatten: bool) -> pa.Table:
    """One partition's rows of a variable's store, in Spark's columns for its type."""
    ttl = variable.ttl_enabled
    if variable.type is VariableType.VALUE:
        value = _stamped(_column(rows, VALUE), _column(rows, EXPIRES), ttl)
        return pa.table({"key": _key(rows, key_names), "value": value,
                         "partition_id": _partition(rows.num_rows, partition)})
    items = _stamped(_column(rows, VALUES).flatten(), _column(rows, EXPIRES).flatten(), ttl)
    if variable.type is VariableType.LIST:
        return _list_table(rows, key_names, items, partition, flatten)
    return _map_table(rows, key_names, items, partition, flatten)


def _list_table(rows: pa.Table, key_names: list[str], items: pa.Array, partition: int,
                flatten: bool) -> pa.Table:
    if flatten:
        key = _key(rows, key_names).take(_parents(rows, VALUES))
        return pa.table({"key": key, "list_element": items,
                         "partition_id": _partition(len(items), partition)})
    lists = pa.ListArray.from_arrays(_offsets(_column(rows, VALUES)), items)
    return pa.table({"key": _key(rows, key_names), "list_value": lists,
                     "partition_id": _partition(rows.num_rows, partition)})


def _map_table(rows: pa.Table, key_names: list[str], items: pa.Array, partition: int,
               flatten: bool) -> pa.Table:
    user_keys = _column(rows, KEYS).flatten()
    if flatten:
        key = _key(rows, key_names).take(_parents(rows, KEYS))
        return pa.table({"key": key, "user_map_key": user_keys, "user_map_value": items,
                         "partition_id": _partition(len(items), partition)})
    maps = pa.MapArray.from_arrays(_offsets(_column(rows, KEYS)), user_keys, items)
    return pa.table({"key": _key(rows, key_names), "map_value": maps,
                     "partition_id": _partition(rows.num_rows, partition)})


def timers_table(rows: pa.Table, key_names: list[str], partition: int) -> pa.Table:
    """One partition's registered timers: a row per (grouping key, expiry)."""
    stamps = _column(rows, TIMERS).flatten().cast(pa.int64())
    key = _key(rows, key_names).take(_parents(rows, TIMERS))
    return pa.table({"key": key, "expiration_timestamp_ms": stamps,
                     "partition_id": _partition(len(stamps), partition)})

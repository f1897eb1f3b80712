"""Spark 4's state data sources over a stopped query's checkpoint, batch-only:
``spark.read.format("statestore")`` and ``format("state-metadata")``.

``statestore`` returns Spark's columns ``key`` (struct), ``value`` (struct) and
``partition_id`` (int) for one store at the state version a committed batch left
(version = batch id + 1). ``state-metadata`` returns one row per operator and store:
``operatorId``, ``operatorName``, ``stateStoreName``, ``numPartitions``, ``minBatchId``,
``maxBatchId``, ``operatorProperties``. Where our state differs from Spark's (an
aggregation's buffer names) ``docs/checkpoint-tools.md`` says how. A join keeps its rows
by row id; with ``joinSide`` the reader computes Spark's key (``field0``...) from each
row as the join recorded it (``state/join_keys.py``), so both engines show one shape.
A transformWithState operator is read one state variable (``stateVarName``) or its timers
(``readRegisteredTimers``) at a time, in Spark's columns (``state/transform_reader.py``),
and listed by ``state-metadata`` as Spark's single ``default`` store with its declarations
(``state/transform_meta.py``). ``snapshotStartBatchId``/``snapshotPartitionId`` rebuild
one partition from a given snapshot.

It lives below ``sql`` (which dispatches to it) and reads files only through the state
store's own readers, so it never disagrees with a restart about what a file means.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.logs import CommitLog
from unbounded.checkpoint.storage import is_url, storage_for
from unbounded.errors import AnalysisException
from unbounded.state.base import OP_COLUMN, StateSchema, StateSchemaFile, StateStoreId
from unbounded.state.files import StateFileEnvelope, StateFileKind, StateFileLog
from unbounded.state.join_keys import JoinKeysFile, JoinSideKeys
from unbounded.state.memory import apply_delta, to_arrow, to_polars
from unbounded.state.reader_errors import (
    invalid_option,
    missing_snapshot,
    required_option,
    snapshot_partition_not_found,
)
from unbounded.state.transform_meta import (
    TIMERS_STORE,
    OperatorInfo,
    StateVariableInfo,
    TransformWithStateFile,
    VariableType,
    variable_name,
)
from unbounded.state.transform_reader import (
    parse_transform_options,
    timers_table,
    variable_table,
)

__all__ = [
    "METADATA_SCHEMA",
    "StateReadOptions",
    "read_state_metadata",
    "read_state_store",
]

_JOIN_SIDES = ("left", "right")
_JOIN_MATCHED = "__join_matched"  # runtime/stateful/join.py's flag, not a row column
_DEFAULT_STORE = "default"

METADATA_SCHEMA = pa.schema([
    ("operatorId", pa.int64()), ("operatorName", pa.large_string()),
    ("stateStoreName", pa.large_string()), ("numPartitions", pa.int32()),
    ("minBatchId", pa.int64()), ("maxBatchId", pa.int64()),
    ("operatorProperties", pa.large_string()),
])
"""The columns of ``format("state-metadata")``, as Spark 4 names and types them."""


@dataclass(frozen=True)
class StateReadOptions:
    """The ``statestore`` reader's options, parsed: Spark's names and defaults.

    >>> StateReadOptions.parse({"operatorId": "1", "joinSide": "Left"})
    StateReadOptions(batch_id=None, operator_id=1, store_name='default', join_side='left', \
state_var_name=None, read_timers=False, flatten=True, snapshot_start=None, \
snapshot_partition=None)
    """

    batch_id: int | None = None
    operator_id: int = 0
    store_name: str = _DEFAULT_STORE
    join_side: str | None = None
    state_var_name: str | None = None  # transformWithState: one state variable
    read_timers: bool = False  # transformWithState: its registered timers
    flatten: bool = True  # flattenCollectionTypes: a row per list element / map entry
    snapshot_start: int | None = None  # snapshotStartBatchId: replay from its snapshot
    snapshot_partition: int | None = None  # snapshotPartitionId: that partition only

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> StateReadOptions:
        opts = {k.lower(): str(v) for k, v in options.items()}
        side = opts.get("joinside", "none").lower()
        if side not in (*_JOIN_SIDES, "none"):
            raise AnalysisException(f"[STDS_INVALID_OPTION_VALUE] joinSide must be left, "
                                    f"right or none, not {side!r}.")
        if side != "none" and "storename" in opts:
            raise AnalysisException("[STDS_CONFLICT_OPTIONS] The options joinSide and "
                                    "storeName cannot be specified together.")
        batch = opts.get("batchid")
        return cls(None if batch is None else _non_negative("batchId", batch),
                   _non_negative("operatorId", opts.get("operatorid", "0")),
                   opts.get("storename", _DEFAULT_STORE), None if side == "none" else side,
                   *parse_transform_options(opts), *_snapshot_options(opts))


def _snapshot_options(opts: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``snapshotStartBatchId`` and ``snapshotPartitionId``: both or neither, as Spark."""
    start, partition = opts.get("snapshotstartbatchid"), opts.get("snapshotpartitionid")
    if start is None and partition is None:
        return None, None
    if start is None or partition is None:
        raise required_option("snapshotStartBatchId" if start is None else
                              "snapshotPartitionId")
    return (_non_negative("snapshotStartBatchId", start),
            _non_negative("snapshotPartitionId", partition))


def _non_negative(name: str, raw: str) -> int:
    if not raw.strip().isdigit():
        raise AnalysisException(f"[STDS_INVALID_OPTION_VALUE] {name} must be a "
                                f"non-negative integer, not {raw!r}.")
    return int(raw)


def _digit_dirs(folder: str) -> list[int]:
    """The numbered subfolders (operators, partitions), locally or at a URL."""
    return sorted(int(n) for n in storage_for(folder).folders(folder) if n.isdigit())


def _store_names(op_path: str, partition: int) -> list[str]:
    """The stores of one partition: ``[""]`` for a single-store operator."""
    folder = os.path.join(op_path, str(partition))
    names = sorted(n for n in storage_for(folder).folders(folder) if not n.startswith("."))
    return names or [""]


def _last_committed(checkpoint: str) -> int:
    folder = os.path.join(checkpoint, "commits")
    latest = CommitLog(folder).latest_id() if storage_for(folder).exists(folder) else None
    if latest is None:
        raise AnalysisException(f"[STDS_OFFSET_LOG_UNAVAILABLE] {checkpoint} has no "
                                "committed batch: there is no state to read.")
    return latest


def _file_schema(path: str, kind: StateFileKind) -> pa.Schema:
    data = (pa.py_buffer(storage_for(path).read(path)) if is_url(path)
            else pa.memory_map(path).read_buffer())
    body = StateFileEnvelope.body(path, data, kind)
    schema = pa.ipc.open_file(body).schema.remove_metadata()
    return pa.schema([f for f in schema if f.name != OP_COLUMN])


def _state_schema(store: StateStoreId, log: StateFileLog, version: int) -> StateSchema:
    """The store's columns as its files hold them, split as ``_metadata/schema`` records."""
    doc = StateSchemaFile(store).read()
    if doc is None:
        raise AnalysisException(f"[STDS_FAILED_TO_READ_STATE_SCHEMA] "
                                f"{StateSchemaFile(store).path} is missing.")
    start, deltas = log.plan(version)
    path, kind = ((log.snapshot_path(start), StateFileKind.SNAPSHOT) if start
                  else (log.delta_path(deltas[0]), StateFileKind.DELTA))
    found = _file_schema(path, kind)
    keys = {f["name"] for f in doc["keySchema"]}
    return StateSchema(pa.schema([f for f in found if f.name in keys]),
                       pa.schema([f for f in found if f.name not in keys]))


def _from_snapshot(log: StateFileLog, snapshot: int, version: int) -> tuple[int, list[int]]:
    """Spark's ``snapshotStartBatchId`` plan: the snapshot of version ``snapshot`` (it
    must exist), then every delta after it up to ``version``."""
    deltas, snapshots = log.versions()
    if snapshot not in snapshots:
        raise missing_snapshot(log.snapshot_path(snapshot))
    needed = list(range(snapshot + 1, version + 1))
    missing = [v for v in needed if v not in deltas]
    if missing:
        raise AnalysisException(f"[STDS_INVALID_OPTION_VALUE] {log.folder} no longer has "
                                f"the delta files of versions {missing}.")
    return snapshot, needed


def _load(store: StateStoreId, version: int,
          snapshot: int | None = None) -> tuple[StateSchema, pl.DataFrame]:
    """The store's rows at ``version``: the newest snapshot at or below it (or the
    snapshot of version ``snapshot``), then deltas."""
    log = StateFileLog(store, StateSchema(pa.schema([("k", pa.int8())]), pa.schema([])), 1)
    schema = _state_schema(store, log, version)
    log = StateFileLog(store, schema, 1)
    start, deltas = log.plan(version) if snapshot is None else \
        _from_snapshot(log, snapshot, version)
    empty = to_polars(pa.Table.from_batches([], schema=schema.row_schema))
    frame = pl.concat([empty, *(to_polars(c) for c in log.snapshot_chunks(start))]) \
        if start else empty
    for v in deltas:
        frame = apply_delta(frame, log.read_delta(v), schema.key_names)
    return schema, frame


def _as_rows(schema: StateSchema, frame: pl.DataFrame, partition: int,
             drop: frozenset[str], join_keys: JoinSideKeys | None) -> pa.Table:
    """Spark's ``key``/``value``/``partition_id`` columns of one partition's rows: the
    stored key, or for a join side the join key computed from each row."""
    table = to_arrow(frame, schema.row_schema)
    values = [n for n in schema.value_names if n not in drop]
    key = pa.StructArray.from_arrays([table.column(n).combine_chunks() for n in
                                      schema.key_names], names=schema.key_names) \
        if join_keys is None else _join_key(join_keys, frame)
    value = pa.StructArray.from_arrays([table.column(n).combine_chunks() for n in values],
                                       fields=[schema.value.field(n) for n in values])
    part = pa.array([partition] * len(table), pa.int32())
    return pa.table({"key": key, "value": value, "partition_id": part})


def _join_key(keys: JoinSideKeys, frame: pl.DataFrame) -> pa.StructArray:
    fields = keys.key_frame(frame).to_arrow()
    return pa.StructArray.from_arrays([c.combine_chunks() for c in fields.columns],
                                      names=fields.column_names)


def _store_folder(op_path: str, partition: int, options: StateReadOptions) -> str:
    """The store name inside a partition folder the options pick ("" = the only one)."""
    names = _store_names(op_path, partition)
    wanted = options.join_side or options.store_name
    if names == [""] and wanted == _DEFAULT_STORE:
        return ""
    if wanted in names:
        return wanted
    shown = ["default" if n == "" else n for n in names]
    raise AnalysisException(f"[STDS_INVALID_OPTION_VALUE] operator {options.operator_id} "
                            f"has no store {wanted!r}; its stores are {shown}.")


def _snapshot_version(options: StateReadOptions) -> int | None:
    return None if options.snapshot_start is None else options.snapshot_start + 1


def _chosen_partitions(checkpoint: str, partitions: list[int], options: StateReadOptions,
                       batch: int) -> list[int]:
    """Every partition, or with ``snapshotPartitionId`` that one (checked as Spark)."""
    if options.snapshot_start is None or options.snapshot_partition is None:
        return partitions
    if options.snapshot_start > batch:
        raise invalid_option("snapshotStartBatchId",
                             f"value should be less than or equal to {batch}")
    if options.snapshot_partition not in partitions:
        raise snapshot_partition_not_found(options.snapshot_partition, options.operator_id,
                                           checkpoint)
    return [options.snapshot_partition]


def _transform_stores(op_path: str, partitions: list[int], options: StateReadOptions) -> bool:
    """Whether to read a transformWithState operator through ``stateVarName`` or
    ``readRegisteredTimers``: its stores, and no ``storeName``/``joinSide`` naming one raw
    store (``storeName="var-count"`` still returns that store's rows as stored)."""
    return (options.store_name == _DEFAULT_STORE and options.join_side is None
            and TIMERS_STORE in _store_names(op_path, partitions[0]))


def _refuse_transform_options(checkpoint: str, options: StateReadOptions,
                              stores: list[str]) -> None:
    """Spark's error for the transformWithState options on another operator."""
    option = ("stateVarName" if options.state_var_name is not None else
              "readRegisteredTimers" if options.read_timers else None)
    if option is None:
        return
    name = _operator_name(stores, _value_names(checkpoint, options.operator_id, stores[0]))
    what = "state variable names" if option == "stateVarName" else "readRegisteredTimers=true"
    raise invalid_option(option, f"Providing {what} is only supported with the "
                                 f"transformWithState operator. Found operator={name}. "
                                 "Please remove this option and re-run the query.")


def _operator_info(checkpoint: str, op: int, stores: list[str]) -> OperatorInfo:
    recorded = TransformWithStateFile(os.path.join(checkpoint, "state"), op).read()
    return recorded or _inferred_info(checkpoint, op, stores)


def _inferred_info(checkpoint: str, op: int, stores: list[str]) -> OperatorInfo:
    """A checkpoint written before the operator recorded its declarations: the variables
    from their stores' columns; TTL and the time mode unknown."""
    variables = []
    for store in stores:
        name = variable_name(store)
        if name is not None:
            values = _value_names(checkpoint, op, store)
            kind = (VariableType.MAP if "__keys" in values else
                    VariableType.LIST if "__values" in values else VariableType.VALUE)
            variables.append(StateVariableInfo(name, kind, ttl_enabled=False))
    return OperatorInfo("transformWithStateInPandasExec", None, None, tuple(variables))


def _selected_variable(info: OperatorInfo, options: StateReadOptions) -> StateVariableInfo | None:
    """The variable the options name (None: the timers), checked as Spark checks it."""
    if options.read_timers:
        if info.time_mode == "None":
            raise invalid_option("readRegisteredTimers",
                                 "Registered timers are not available in TimeMode=None.")
        return None
    if options.state_var_name is None:
        raise required_option("stateVarName")
    variable = info.variable(options.state_var_name)
    if variable is None:
        raise invalid_option("stateVarName", f"State variable {options.state_var_name} is "
                                             "not defined for the transformWithState operator.")
    return variable


def _has_expiry(frame: pl.DataFrame) -> bool:
    """Whether any stored value carries a TTL expiry (-1: none)."""
    column = frame.get_column("__expires_ms")
    values = column.explode() if isinstance(column.dtype, pl.List) else column
    return bool((values.drop_nulls() != -1).any())


def _read_transform(checkpoint: str, partitions: list[int], options: StateReadOptions,
                    batch: int) -> pa.Table:
    """One state variable, or the timers, of a transformWithState operator."""
    root, op = os.path.join(checkpoint, "state"), options.operator_id
    info = _operator_info(checkpoint, op, _store_names(os.path.join(root, str(op)),
                                                        partitions[0]))
    variable = _selected_variable(info, options)
    folder = TIMERS_STORE if variable is None else variable.store
    loaded = [(p, *_load(StateStoreId(root, op, p, folder), batch + 1,
                         _snapshot_version(options))) for p in partitions]
    if variable is not None and info.time_mode is None:
        variable = replace(variable, ttl_enabled=any(_has_expiry(f) for _, _, f in loaded))
    parts = []
    for p, schema, frame in loaded:
        rows = to_arrow(frame, schema.row_schema)
        parts.append(timers_table(rows, schema.key_names, p) if variable is None else
                     variable_table(variable, rows, schema.key_names, p, options.flatten))
    return pa.concat_tables(parts)


def read_state_store(checkpoint: str, options: StateReadOptions) -> pa.Table:
    """Every row of one store of one operator, at the batch ``options`` picks.

    ``joinSide`` returns that side's rows keyed by the join key (Spark's
    ``struct<field0, ...>``; by row id for a checkpoint written before the join recorded
    its keys) without the join's matched flag; naming the store (``storeName="left"``)
    returns it raw.
    """
    last = _last_committed(checkpoint)
    batch = last if options.batch_id is None else options.batch_id
    if batch > last:
        raise AnalysisException(f"[STDS_INVALID_OPTION_VALUE] batchId {batch} is not "
                                f"committed; the last committed batch is {last}.")
    op_path = os.path.join(checkpoint, "state", str(options.operator_id))
    partitions = _digit_dirs(op_path)
    if not partitions:
        raise AnalysisException(f"[STDS_INVALID_OPTION_VALUE] {checkpoint} has no state "
                                f"for operator {options.operator_id}.")
    partitions = _chosen_partitions(checkpoint, partitions, options, batch)
    if _transform_stores(op_path, partitions, options):
        return _read_transform(checkpoint, partitions, options, batch)
    _refuse_transform_options(checkpoint, options, _store_names(op_path, partitions[0]))
    drop = frozenset({_JOIN_MATCHED}) if options.join_side else frozenset()
    keys = None if options.join_side is None else JoinKeysFile(
        os.path.join(checkpoint, "state"), options.operator_id).read(options.join_side)
    parts = []
    for p in partitions:
        store = StateStoreId(os.path.join(checkpoint, "state"), options.operator_id, p,
                             _store_folder(op_path, p, options))
        parts.append(_as_rows(*_load(store, batch + 1, _snapshot_version(options)), p, drop,
                              keys))
    return pa.concat_tables(parts)


def _operator_name(stores: list[str], value_names: list[str]) -> str:
    """Spark's name for the operator that wrote stores with these value columns."""
    if set(stores) == set(_JOIN_SIDES):
        return "symmetricHashJoin"
    if value_names == ["__expires_at"]:
        return "dedupe"
    if {"groupState", "timeoutTimestamp"} <= set(value_names):
        return "flatMapGroupsWithState"
    if any("#" in n for n in value_names):
        return "stateStoreSave"
    if TIMERS_STORE in stores:
        return "transformWithStateInPandasExec"
    return "transformWithStateExec" if stores != [""] else "stateStoreSave"


def _min_batch(checkpoint: str, op: int, partitions: list[int], store: str) -> int:
    """The oldest batch whose state every partition can still rebuild."""
    oldest = 1
    for p in partitions:
        log = StateFileLog(StateStoreId(os.path.join(checkpoint, "state"), op, p, store),
                           StateSchema(pa.schema([("k", pa.int8())]), pa.schema([])), 1)
        deltas, snapshots = log.versions()
        starts = set(snapshots) | ({1} if 1 in deltas else set())
        oldest = max(oldest, min(starts, default=1))
    return oldest - 1


def _value_names(checkpoint: str, op: int, store: str) -> list[str]:
    doc = StateSchemaFile(StateStoreId(os.path.join(checkpoint, "state"), op, 0, store)).read()
    return [f["name"] for f in doc["valueSchema"]] if doc else []


def _transform_metadata(checkpoint: str, op: int, partitions: list[int], stores: list[str],
                        last: int) -> dict[str, object]:
    """A transformWithState operator as Spark lists it: one ``default`` store (its
    variables are column families of it) with the declarations as properties."""
    info = _operator_info(checkpoint, op, stores)
    oldest = max(_min_batch(checkpoint, op, partitions, s) for s in stores)
    return {"operatorId": op, "operatorName": info.operator_name,
            "stateStoreName": _DEFAULT_STORE, "numPartitions": len(partitions),
            "minBatchId": oldest, "maxBatchId": last, "operatorProperties": info.properties()}


def read_state_metadata(checkpoint: str) -> pa.Table:
    """One row per operator and store of the checkpoint (Spark's ``state-metadata``)."""
    last = _last_committed(checkpoint)
    rows: list[dict[str, object]] = []
    for op in _digit_dirs(os.path.join(checkpoint, "state")):
        partitions = _digit_dirs(os.path.join(checkpoint, "state", str(op)))
        if not partitions:
            continue
        stores = _store_names(os.path.join(checkpoint, "state", str(op)), partitions[0])
        if TIMERS_STORE in stores:
            rows.append(_transform_metadata(checkpoint, op, partitions, stores, last))
            continue
        name = _operator_name(stores, _value_names(checkpoint, op, stores[0]))
        rows += [{"operatorId": op, "operatorName": name,
                  "stateStoreName": s or _DEFAULT_STORE, "numPartitions": len(partitions),
                  "minBatchId": _min_batch(checkpoint, op, partitions, s),
                  "maxBatchId": last, "operatorProperties": None} for s in stores]
    return pa.Table.from_pylist(rows, schema=METADATA_SCHEMA)

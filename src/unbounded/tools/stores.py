"""The state stores a checkpoint holds, found from its folders, and their files opened.

``state/<operator>/<partition>[/<store>]/<version>.delta|.snapshot`` with
``state/<operator>/_metadata/partitioning`` and ``.../_metadata/schema[-<store>]``
(formats: :class:`unbounded.state.files.StateFileLog`,
:class:`unbounded.state.base.StateSchemaFile`,
:func:`unbounded.runtime.stateful.base.check_partitioning`). Found and sized through the
checkpoint's storage layer, so a checkpoint at a URL is listed as a local one is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from unbounded.checkpoint.storage import FsspecStorage, storage_for
from unbounded.errors import CheckpointCorruptError
from unbounded.state.base import OP_COLUMN, StateSchema, StateSchemaFile, StateStoreId
from unbounded.state.files import StateFileEnvelope, StateFileKind, StateFileLog

__all__ = [
    "StoreFiles",
    "listing_log",
    "operator_ids",
    "partitioning",
    "reading_log",
    "store_files",
    "store_ids",
]

# versions(), plan() and the path helpers of StateFileLog read only file names.
_NAMES_ONLY = StateSchema(pa.schema([("key", pa.int8())]), pa.schema([]))


@dataclass(frozen=True)
class StoreFiles:
    """One state store's folder: the versions its delta and snapshot files hold."""

    store_id: StateStoreId
    deltas: tuple[int, ...]
    snapshots: tuple[int, ...]
    size_bytes: int

    @property
    def latest_version(self) -> int:
        return max((*self.deltas, *self.snapshots), default=0)


def _digit_dirs(folder: str) -> list[int]:
    return sorted(int(n) for n in storage_for(folder).folders(folder) if n.isdigit())


def operator_ids(state_root: str) -> list[int]:
    """The operators that have a state folder, in order."""
    return _digit_dirs(state_root)


def partitioning(state_root: str, operator_id: int) -> dict[str, Any] | None:
    """The operator's recorded ``_metadata/partitioning``; None when it has none."""
    path = os.path.join(state_root, str(operator_id), "_metadata", "partitioning")
    store = storage_for(path)
    if not store.exists(path):
        return None
    try:
        doc = json.loads(store.read(path))
    except (OSError, ValueError) as e:
        raise CheckpointCorruptError(f"{path} is not readable partitioning JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise CheckpointCorruptError(f"{path} is not partitioning format version 1: {doc!r:.80}")
    return doc


def store_ids(state_root: str, operator_id: int) -> list[StateStoreId]:
    """Every store of the operator: one per partition, or one per name in each partition
    (a join's ``left``/``right``)."""
    op_path = os.path.join(state_root, str(operator_id))
    out: list[StateStoreId] = []
    for p in _digit_dirs(op_path):
        folder = os.path.join(op_path, str(p))
        names = sorted(n for n in storage_for(folder).folders(folder) if not n.startswith("."))
        out += [StateStoreId(state_root, operator_id, p, n) for n in names or [""]]
    return out


def listing_log(store_id: StateStoreId) -> StateFileLog:
    """A log of the store that lists versions and plans recoveries (reads no rows)."""
    return StateFileLog(store_id, _NAMES_ONLY, 1)


def store_files(store_id: StateStoreId) -> StoreFiles:
    log = listing_log(store_id)
    deltas, snapshots = log.versions()
    paths = [log.delta_path(v) for v in deltas] + [log.snapshot_path(v) for v in snapshots]
    size = sum(_size(p) for p in paths)
    return StoreFiles(store_id, tuple(sorted(deltas)), tuple(sorted(snapshots)), size)


def _size(path: str) -> int:
    """The file's size in bytes (0 when it is gone), on a local disk or a store."""
    store = storage_for(path)
    if isinstance(store, FsspecStorage):
        return store.stat(path)[0] if store.exists(path) else 0
    return os.path.getsize(path) if os.path.exists(path) else 0


def _file_bytes(path: str) -> pa.Buffer:
    """The whole file: mapped from a local disk, read from a store."""
    store = storage_for(path)
    if isinstance(store, FsspecStorage):
        return pa.py_buffer(store.read(path))
    return pa.memory_map(path).read_buffer()


def _file_schema(path: str, kind: StateFileKind) -> pa.Schema:
    """The row columns of the state file ``path``, after its envelope's checks."""
    try:
        body = StateFileEnvelope.body(path, _file_bytes(path), kind)
        schema = pa.ipc.open_file(body).schema.remove_metadata()
    except (OSError, pa.ArrowException) as e:
        if isinstance(e, CheckpointCorruptError):
            raise
        raise CheckpointCorruptError(f"State file {path} does not open: {e}") from e
    return pa.schema([f for f in schema if f.name != OP_COLUMN])


def _recorded_schema(store_id: StateStoreId) -> tuple[str, dict[str, Any]]:
    schema_file = StateSchemaFile(store_id)
    doc = schema_file.read()
    if doc is None:
        raise CheckpointCorruptError(
            f"{schema_file.path} is missing: the state schema of {store_id.path} is unknown.")
    return schema_file.path, doc


def reading_log(store_id: StateStoreId, path: str, kind: StateFileKind) -> StateFileLog:
    """A log of the store that reads rows, with the schema of its file ``path``, which
    must be the one ``_metadata/schema`` records."""
    schema_path, doc = _recorded_schema(store_id)
    found = _file_schema(path, kind)
    recorded = [(f["name"], f["type"]) for f in [*doc["keySchema"], *doc["valueSchema"]]]
    if [(f.name, str(f.type)) for f in found] != recorded:
        raise CheckpointCorruptError(
            f"State file {path} has columns {[(f.name, str(f.type)) for f in found]}, but "
            f"{schema_path} records {recorded}.")
    keys = {f["name"] for f in doc["keySchema"]}
    schema = StateSchema(pa.schema([f for f in found if f.name in keys]),
                         pa.schema([f for f in found if f.name not in keys]))
    return StateFileLog(store_id, schema, 1)

"""How long a fresh state store provider takes to restore state, and its memory per key.

Run: ``PYTHONPATH=src python bench/state_restore.py 1000000 [memory|disk]``
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa

from unbounded.state.base import StateSchema, StateStoreConf, StateStoreId
from unbounded.state.registry import provider_class

__all__ = ["run"]

SCHEMA = StateSchema(
    key=pa.schema([("key", pa.int64())]),
    value=pa.schema([("count", pa.int64()), ("sum", pa.float64())]),
)


def _state(n_keys: int) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "key": rng.permutation(n_keys).astype(np.int64),
            "count": rng.integers(1, 1000, n_keys),
            "sum": rng.random(n_keys) * 1000,
        }
    )


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def run(n_keys: int, provider: str = "memory", snapshot: bool = True) -> dict[str, Any]:
    """Commit ``n_keys`` distinct keys as version 1 (as a snapshot, or as a delta only
    when ``snapshot`` is false), then restore version 1 in a fresh provider."""
    root = tempfile.mkdtemp(prefix="unbounded-bench-state-")
    conf = StateStoreConf(provider_class=provider, min_deltas_for_snapshot=1 if snapshot else 10)
    store_id = StateStoreId(root, 0, 0)
    cls = provider_class(provider)
    try:
        writer = cls(store_id, SCHEMA, conf)
        store = writer.get_store(0)
        store.upsert(_state(n_keys))
        started = time.perf_counter()
        store.commit()
        commit_s = time.perf_counter() - started
        writer.close()

        started = time.perf_counter()
        reader = cls(store_id, SCHEMA, conf)
        restored = reader.get_store(1)
        restore_s = time.perf_counter() - started
        metrics = restored.metrics
        assert metrics.num_rows_total == n_keys, metrics
        reader.close()
        return {
            "provider": provider,
            "n_keys": n_keys,
            "commit_s": round(commit_s, 4),
            "restore_s": round(restore_s, 4),
            "restore_keys_per_s": round(n_keys / restore_s) if restore_s else None,
            "memory_bytes_per_key": round(metrics.memory_used_bytes / max(n_keys, 1), 2),
            "checkpoint_bytes_per_key": round(_folder_bytes(root) / max(n_keys, 1), 2),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    kind = sys.argv[2] if len(sys.argv) > 2 else "memory"
    print(run(n, kind))

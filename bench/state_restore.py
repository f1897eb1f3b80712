"""How long a fresh state store provider takes to restore state, and its memory per key.

Part of ``python -m bench`` (workload ``state_restore``, issue 3: 10M distinct keys
restore in under 5 s). The baseline is reading the same table from one Parquet file
with ``pyarrow`` in the same run; ``ratio`` is baseline time / restore time.

Run alone: ``python -m bench.state_restore 1000000 [memory|disk]``
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
import pyarrow.parquet as pq

from bench.harness import BenchContext, Measure, Workload, WorkloadResult, failure_reason
from unbounded.state.base import StateSchema, StateStoreConf, StateStoreId
from unbounded.state.registry import provider_class

__all__ = ["WORKLOAD", "bench", "run"]

PROVIDERS = ("memory", "disk")
TARGET_RESTORE_S = 5.0

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


def _rss_bytes() -> int:
    """The resident set size of this process (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _parquet_read_s(table: pa.Table, folder: str) -> float:
    path = os.path.join(folder, "baseline.parquet")
    pq.write_table(table, path)
    started = time.perf_counter()
    pq.read_table(path)
    return time.perf_counter() - started


def run(n_keys: int, provider: str = "memory", snapshot: bool = True) -> dict[str, Any]:
    """Commit ``n_keys`` distinct keys as version 1 (as a snapshot, or as a delta only
    when ``snapshot`` is false), restore version 1 in a fresh provider, then upsert
    every key again (``update_s``: all keys present)."""
    root = tempfile.mkdtemp(prefix="unbounded-bench-state-")
    conf = StateStoreConf(provider_class=provider, min_deltas_for_snapshot=1 if snapshot else 10)
    store_id = StateStoreId(root, 0, 0)
    cls = provider_class(provider)
    try:
        writer = cls(store_id, SCHEMA, conf)
        store = writer.get_store(0)
        state = _state(n_keys)
        started = time.perf_counter()
        store.upsert(state)
        upsert_s = time.perf_counter() - started
        started = time.perf_counter()
        store.commit()
        commit_s = time.perf_counter() - started
        writer.close()

        rss_before = _rss_bytes()
        started = time.perf_counter()
        reader = cls(store_id, SCHEMA, conf)
        restored = reader.get_store(1)
        restore_s = time.perf_counter() - started
        rss_growth = _rss_bytes() - rss_before
        metrics = restored.metrics
        assert metrics.num_rows_total == n_keys, metrics
        started = time.perf_counter()
        restored.upsert(state)  # every key present: the update path of a running query
        update_s = time.perf_counter() - started
        assert restored.metrics.num_rows_total == n_keys
        reader.close()
        return {
            "provider": provider,
            "n_keys": n_keys,
            "upsert_s": round(upsert_s, 4),
            "commit_s": round(commit_s, 4),
            "restore_s": round(restore_s, 4),
            "update_s": round(update_s, 4),
            "restore_keys_per_s": round(n_keys / restore_s) if restore_s else None,
            "memory_bytes_per_key": round(metrics.memory_used_bytes / max(n_keys, 1), 2),
            "checkpoint_bytes_per_key": round(_folder_bytes(root) / max(n_keys, 1), 2),
            "rss_growth_bytes_per_key": round(rss_growth / max(n_keys, 1), 2),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _measures(r: dict[str, Any], baseline_s: float) -> list[Measure]:
    name = f"{r['provider']} provider restore"
    ratio = baseline_s / r["restore_s"] if r["restore_s"] else None
    return [
        Measure(name, r["restore_s"], "s", ratio, f"< {TARGET_RESTORE_S:.0f} s",
                r["restore_s"] < TARGET_RESTORE_S,
                f"{r['restore_keys_per_s'] or 0:,} keys/s; first upsert {r['upsert_s']:.2f} s, "
                f"commit {r['commit_s']:.2f} s; update of every key after restore "
                f"{r['update_s']:.2f} s"),
        Measure(f"{r['provider']} memory per key", r["memory_bytes_per_key"], "bytes",
                note=f"metrics.memoryUsedBytes; RSS growth "
                     f"{r['rss_growth_bytes_per_key']:.1f} B/key; checkpoint "
                     f"{r['checkpoint_bytes_per_key']:.1f} B/key"),
    ]


def bench(ctx: BenchContext) -> WorkloadResult:
    """Restore ``ctx.rows`` distinct keys with each provider, beside a plain Parquet read."""
    folder = ctx.fresh_run_dir("state_restore")
    baseline_s = _parquet_read_s(_state(ctx.rows), folder)
    result = WorkloadResult("state_restore", params={"keys": ctx.rows,
                                                     "parquet_read_s": baseline_s})
    result.measures.append(Measure("pyarrow Parquet read of the state (baseline)",
                                   baseline_s, "s", 1.0))
    for provider in PROVIDERS:
        try:
            measured = run(ctx.rows, provider)
        except Exception as exc:
            result.measures.append(Measure(f"{provider} provider restore", None, "s",
                                           note=f"failed: {failure_reason(exc)}"))
            result.status, result.error = "failed", f"{provider}: {failure_reason(exc)}"
            continue
        result.params[provider] = measured
        result.measures.extend(_measures(measured, baseline_s))
    return result


WORKLOAD = Workload("state_restore", "restore 10M distinct keys in a fresh provider",
                    10_000_000, bench)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    kind = sys.argv[2] if len(sys.argv) > 2 else "memory"
    print(run(n, kind))

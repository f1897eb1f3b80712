"""A seeded workload: input files with unique ids, per-key sequence numbers and event
times that arrive out of order and late, plus an oracle that computes the expected
output as one batch query over all the input (Polars).

One input file is one batch (``maxFilesPerTrigger=1``), so the watermark each batch uses
is known here: ``max(event time of the earlier files) - DELAY``. As in Spark 3.4+, late
rows are dropped with the previous batch's watermark and a row of a windowed aggregation
is late when its window's end is at or below it; an on-time row is a second above the
current watermark, a late row's window ends over a second below the previous one, so the
oracle never depends on how the engine breaks a tie.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

__all__ = [
    "COLUMNS",
    "DELAY_MS",
    "KEYS",
    "WINDOW_MS",
    "Workload",
    "compare",
    "expected_rows",
    "generate",
]

KEYS = 6
WINDOW_MS = 10_000
DELAY_MS = 15_000
_SPAN_MS = 20_000  # event time each file moves forward
_JITTER_MS = DELAY_MS - 3_000  # out of order, yet on time
_T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# What each query (chaos.job) outputs, in the order the oracle compares.
COLUMNS = {"stateless": ("id", "key", "seq", "ts_ms"), "windowed": ("ws", "key", "count", "ids"),
           "dedup": ("key", "bucket"), "join": ("key", "lid", "rid"),
           "aggregate": ("key", "count", "ids")}


@dataclass(frozen=True)
class Workload:
    """What ``generate`` wrote: every row, and whether the engine must drop it as late."""

    seed: int
    rows: pl.DataFrame  # id, key, seq, ts_ms, late
    per_file: int  # rows of one input file, which is one batch: file = id // per_file

    @property
    def final_watermark_ms(self) -> int:
        return int(self.rows["ts_ms"].max()) - DELAY_MS  # type: ignore[arg-type]


def _file_rows(rng: random.Random, index: int, per_file: int, *,
               marks: tuple[int | None, int | None], seqs: dict[str, int],
               first_id: int) -> list[dict[str, object]]:
    """Rows of file ``index``; ``marks`` = (watermark for late rows, current watermark)."""
    late_mark, watermark = marks
    rows = []
    for i in range(per_file):
        key = f"k{rng.randrange(KEYS)}"
        late = late_mark is not None and rng.random() < 0.08
        if late:
            assert late_mark is not None
            ts = late_mark - rng.randrange(WINDOW_MS + 1_000, 3 * WINDOW_MS)
        else:
            floor = (watermark + 1_000) if watermark is not None else _T0_MS
            ts = max(floor, _T0_MS + index * _SPAN_MS + rng.randrange(-_JITTER_MS, _SPAN_MS))
        rows.append({"id": first_id + i, "key": key, "seq": seqs.get(key, 0), "ts_ms": ts,
                     "late": late})
        seqs[key] = seqs.get(key, 0) + 1
    return rows


def _line(row: dict[str, object]) -> str:
    ts = datetime.fromtimestamp(int(row["ts_ms"]) / 1000, UTC)  # type: ignore[call-overload]
    text = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    return json.dumps({"id": row["id"], "key": row["key"], "seq": row["seq"],
                       "ts": text, "ts_ms": row["ts_ms"]})


def generate(folder: str, seed: int, files: int, per_file: int) -> Workload:
    """Write ``files`` JSON files of ``per_file`` rows into ``folder`` (in listing order)."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    seqs: dict[str, int] = {}
    everything: list[dict[str, object]] = []
    marks: tuple[int | None, int | None] = (None, None)
    for index in range(files):
        rows = _file_rows(rng, index, per_file, marks=marks, seqs=seqs,
                          first_id=len(everything))
        rng.shuffle(rows)  # per-key sequence numbers arrive out of order too
        path = os.path.join(folder, f"part-{index:04d}.json")
        with open(path, "w") as f:
            f.write("\n".join(_line(r) for r in rows) + "\n")
        os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))
        everything.extend(rows)
        top = max(int(r["ts_ms"]) for r in everything)  # type: ignore[call-overload]
        marks = (marks[1], top - DELAY_MS)
    return Workload(seed, pl.DataFrame(everything), per_file)


def _windowed(work: Workload) -> pl.DataFrame:
    on_time = work.rows.filter(~pl.col("late"))
    return (on_time.with_columns(ws=pl.col("ts_ms") - pl.col("ts_ms") % WINDOW_MS)
            .group_by("ws", "key").agg(pl.len().alias("count"),
                                       pl.col("id").sum().alias("ids"))
            .filter(pl.col("ws") + WINDOW_MS <= work.final_watermark_ms))


def _join(work: Workload) -> pl.DataFrame:
    left = work.rows.filter(pl.col("seq") % 2 == 0).select(
        "key", jseq=pl.col("seq"), lid=pl.col("id"))
    right = work.rows.filter(pl.col("seq") % 2 == 1).select(
        "key", jseq=pl.col("seq") - 1, rid=pl.col("id"))
    return left.join(right, on=["key", "jseq"])


def _updates(work: Workload) -> pl.DataFrame:
    """Update mode: after each batch, the running count and sum of every key it held."""
    batch = (pl.col("id") // work.per_file).alias("batch")
    per_batch = work.rows.group_by(batch, "key").agg(pl.len().alias("n"),
                                                     pl.col("id").sum().alias("s"))
    ordered = per_batch.sort("batch")
    return ordered.with_columns(count=pl.col("n").cum_sum().over("key"),
                                ids=pl.col("s").cum_sum().over("key"))


def expected_rows(work: Workload, query: str) -> Counter[tuple[object, ...]]:
    """The oracle: the query's whole output as one batch query over every input row."""
    if query == "stateless":
        frame = work.rows.filter(pl.col("seq") % 7 != 3)
    elif query == "windowed":
        frame = _windowed(work)
    elif query == "dedup":
        frame = work.rows.select("key", bucket=pl.col("seq") // 5).unique()
    elif query == "join":
        frame = _join(work)
    else:
        frame = _updates(work)
    return Counter(frame.select(COLUMNS[query]).iter_rows())


def compare(expected: Counter[tuple[object, ...]],
            actual: Counter[tuple[object, ...]]) -> tuple[int, int]:
    """(lost, duplicated or unexpected) rows of ``actual`` against ``expected``."""
    lost = sum((expected - actual).values())
    extra = sum((actual - expected).values())
    return lost, extra

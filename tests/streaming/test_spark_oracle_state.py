"""Apache Spark as the oracle for applyInPandasWithState: the same functions over the
same random event files with the same batch boundaries in both engines (sessions closed
by event-time timeouts; running counts without timeouts).

Opt-in, as tests/streaming/test_spark_oracle.py: ``UNBOUNDED_SPARK_ORACLE=1 pytest
tests/streaming/test_spark_oracle_state.py`` with ``pyspark`` installed and Java 17+.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from unbounded.sql import SparkSession

if os.environ.get("UNBOUNDED_SPARK_ORACLE") != "1":
    pytest.skip("Spark oracle tests are opt-in: set UNBOUNDED_SPARK_ORACLE=1 (needs pyspark "
                "and Java 17+)", allow_module_level=True)
pytest.importorskip("pyspark", reason="UNBOUNDED_SPARK_ORACLE=1 but pyspark is not "
                                      "installed: pip install -e '.[oracle]'")

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)
GAP_MS = 10 * 60 * 1000


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    from pyspark.sql import SparkSession as PySparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need pandas
    session = (PySparkSession.builder.master("local[1]").appName("unbounded-oracle-state")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def ours() -> SparkSession:
    return SparkSession.builder.appName("oracle-state").create()


def _event_files(tmp_path: Any, seed: int) -> str:
    """Random events of a few users per file, minutes apart, slightly out of order
    (some late rows), each file later than the one before."""
    rng = random.Random(seed)
    folder = tmp_path / "events"
    folder.mkdir()
    for f in range(6):
        users = rng.sample(["a", "b", "c", "d", "e", "f"], 3)
        rows = []
        for _ in range(rng.randint(4, 12)):
            at = T0 + dt.timedelta(minutes=f * 25 + rng.randint(0, 20) - rng.choice([0, 0, 30]))
            rows.append({"user": rng.choice(users), "amount": rng.randint(1, 9),
                         "ts": at.isoformat(sep=" ")})
        path = folder / f"{f:03d}.json"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.utime(path, (1_700_000_000 + f, 1_700_000_000 + f))
    return str(folder)


def _epoch_ms(t: Any) -> int:
    return int(pd.Timestamp(t).timestamp() * 1000)


def sessionize(key: Any, frames: Any, state: Any) -> Any:
    if state.hasTimedOut:
        start, end, n, total = state.get
        state.remove()
        yield pd.DataFrame({"user": [key[0]], "start": [start], "end": [end], "n": [n],
                            "total": [total]})
        return
    start, end, n, total = state.get if state.exists else (None, None, 0, 0)
    for pdf in frames:
        first, last = _epoch_ms(pdf.ts.min()), _epoch_ms(pdf.ts.max())
        start = first if start is None else min(start, first)
        end = last if end is None else max(end, last)
        n, total = n + len(pdf), total + int(pdf.amount.sum())
    state.update((start, end, n, total))
    state.setTimeoutTimestamp(max(end + GAP_MS, state.getCurrentWatermarkMs()))


def running(key: Any, frames: Any, state: Any) -> Any:
    n, seen = state.get if state.exists else (0, "")
    for pdf in frames:
        n += int(pdf.amount.sum())
        seen += "".join(sorted(str(a) for a in pdf.amount))
    state.update((n, seen[-12:]))
    yield pd.DataFrame({"user": [key[0]], "n": [n], "seen": [seen[-12:]]})


def _query(session: Any, folder: str, case: str) -> Any:
    from unbounded.sql.streaming_state import GroupStateTimeout

    events = (session.readStream.schema("user STRING, amount LONG, ts TIMESTAMP")
              .option("maxFilesPerTrigger", 1).json(folder))
    if case == "sessions":
        return (events.withWatermark("ts", "15 minutes").groupBy("user")
                .applyInPandasWithState(sessionize, "user string, start long, end long, "
                                        "n long, total long", "start long, end long, n long, "
                                        "total long", "append",
                                        GroupStateTimeout.EventTimeTimeout))
    return events.groupBy("user").applyInPandasWithState(
        running, "user string, n long, seen string", "n long, seen string", "update",
        GroupStateTimeout.NoTimeout)


def _run(session: Any, folder: str, case: str, checkpoint: str) -> Counter[tuple]:
    rows: list[Any] = []
    mode = "append" if case == "sessions" else "update"
    query = (_query(session, folder, case).writeStream.outputMode(mode)
             .foreachBatch(lambda df, _: rows.extend(df.collect()))
             .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
    query.awaitTermination()
    return Counter(tuple(r) for r in rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", ["sessions", "running"])
def test_apply_in_pandas_with_state_matches_spark(ours, pyspark_session, tmp_path, seed, case):
    folder = _event_files(tmp_path, seed)
    theirs = _run(pyspark_session, folder, case, str(tmp_path / "cp-spark"))
    mine = _run(ours, folder, case, str(tmp_path / "cp-ours"))
    assert sum(mine.values()) > 0
    assert mine == theirs

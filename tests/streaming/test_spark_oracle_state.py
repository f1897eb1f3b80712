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
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from spark_oracle import ORACLE_MARKS, require_spark_oracle, started_pyspark, workers_import_from
from unbounded.sql import SparkSession

require_spark_oracle()

pytestmark = [*ORACLE_MARKS]

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)
GAP_MS = 10 * 60 * 1000
FILES = 6


@pytest.fixture(scope="module")
def pyspark_session() -> Iterator[Any]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need pandas
    workers_import_from(os.path.dirname(os.path.abspath(__file__)))
    with started_pyspark("unbounded-oracle-state", **{
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.session.timeZone": "UTC",
    }) as session:
        yield session


@pytest.fixture(scope="module")
def ours() -> Iterator[SparkSession]:
    session = SparkSession.builder.appName("oracle-state").create()
    yield session
    session.stop()


def _event_files(tmp_path: Any, seed: int) -> str:
    """Random events of a few users per file, minutes apart, slightly out of order
    (some late rows), each file later than the one before."""
    rng = random.Random(seed)
    folder = tmp_path / "events"
    folder.mkdir()
    for f in range(FILES):
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


# ---- transformWithStateInPandas ----------------------------------------------------------
class _SessionLogic:
    """Event time: a session per user in value, list and map state, closed by a timer
    GAP_MS after its last event; every call reports the state it left."""

    def init(self, handle: Any) -> None:
        self.handle = handle
        self.session = handle.getValueState("session", "start long, end long")
        self.amounts = handle.getListState("amounts", "a long")
        self.counts = handle.getMapState("counts", "a long", "n long")

    def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
        pdf = pd.concat(list(rows))
        start, end = self.session.get() or (None, None)
        first, last = _epoch_ms(pdf.ts.min()), _epoch_ms(pdf.ts.max())
        start, end = min(start or first, first), max(end or last, last)
        self.session.update((start, end))
        self.amounts.appendList([(int(a),) for a in pdf.amount])
        for a in pdf.amount:
            self.counts.updateValue((int(a),), ((self.counts.getValue((int(a),)) or (0,))[0] + 1,))
        for timer in list(self.handle.listTimers()):
            self.handle.deleteTimer(timer)
        self.handle.registerTimer(end + GAP_MS)
        yield self._report(key, "open", timerValues)

    def handleExpiredTimer(self, key: Any, timerValues: Any, expiredTimerInfo: Any) -> Any:
        row = self._report(key, f"closed@{expiredTimerInfo.getExpiryTimeInMs()}", timerValues)
        self.session.clear()
        self.amounts.clear()
        self.counts.clear()
        yield row

    def _report(self, key: Any, kind: str, timerValues: Any) -> pd.DataFrame:
        start, end = self.session.get()
        amounts = [a for (a,) in self.amounts.get()]
        counts = " ".join(f"{k}x{v}" for (k,), (v,) in sorted(self.counts.iterator()))
        return pd.DataFrame({"user": [key[0]], "kind": [kind], "start": [start], "end": [end],
                             "amounts": [",".join(map(str, amounts))], "counts": [counts],
                             "watermark": [timerValues.getCurrentWatermarkInMs()]})

    def close(self) -> None:
        pass


class _TickLogic:
    """Processing time: a running count, a map whose entries live 1 ms (visible in the
    call that wrote them, gone by the next batch) and a timer due in the next batch."""

    def init(self, handle: Any) -> None:
        self.handle = handle
        self.count = handle.getValueState("count", "n long")
        self.recent = handle.getMapState("recent", "a long", "n long", ttlDurationMs=1)
        self.fired = handle.getListState("fired", "k string", ttlDurationMs=3_600_000)

    def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
        before = sorted(self.recent.keys())
        n = (self.count.get() or (0,))[0]
        for pdf in rows:
            n += len(pdf)
            for a in pdf.amount:
                self.recent.updateValue((int(a),), (1,))
        self.count.update((n,))
        now = timerValues.getCurrentProcessingTimeInMs()
        self.handle.registerTimer(now + 1)
        yield pd.DataFrame({"user": [key[0]], "kind": ["rows"], "n": [n],
                            "detail": [f"before={before} now={sorted(self.recent.keys())} "
                                       f"timers={len(list(self.handle.listTimers()))}"]})

    def handleExpiredTimer(self, key: Any, timerValues: Any, expiredTimerInfo: Any) -> Any:
        self.fired.appendValue((key[0],))
        yield pd.DataFrame({"user": [key[0]], "kind": ["timer"],
                            "n": [(self.count.get() or (-1,))[0]],
                            "detail": [f"fired={len(list(self.fired.get()))} "
                                       f"recent={sorted(self.recent.keys())}"]})

    def close(self) -> None:
        pass


class _RowSessionLogic:
    """Row-based transformWithState: event-time sessions, reporting how the rows and the
    key reach the handler (time zone of the timestamps, key type)."""

    Row: Any = None  # the engine's Row class

    def init(self, handle: Any) -> None:
        self.handle = handle
        self.session = handle.getValueState("session", "start long, end long, n long")

    def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
        times = [r.ts for r in rows]
        stamps = [int(t.timestamp() * 1000) for t in times]
        start, end, n = self.session.get() or (min(stamps), max(stamps), 0)
        start, end, n = min(start, *stamps), max(end, *stamps), n + len(stamps)
        self.session.update((start, end, n))
        for timer in list(self.handle.listTimers()):
            self.handle.deleteTimer(timer)
        self.handle.registerTimer(end + GAP_MS)
        zones = ",".join(sorted({str(t.tzinfo) for t in times}))
        yield self.Row(user=key[0], kind="open", start=start, n=n, how=f"{zones} "
                       f"{type(key).__name__}[{type(key[0]).__name__}]")

    def handleExpiredTimer(self, key: Any, timerValues: Any, expiredTimerInfo: Any) -> Any:
        start, _, n = self.session.get()
        self.session.clear()
        yield self.Row(user=key[0], kind=f"closed@{expiredTimerInfo.getExpiryTimeInMs()}",
                       start=start, n=n)

    def close(self) -> None:
        pass


def _processor(case: str, pyspark: bool) -> Any:
    """The same logic under each engine's StatefulProcessor base class."""
    if pyspark:
        from pyspark.sql import Row
        from pyspark.sql.streaming.stateful_processor import StatefulProcessor
    else:
        from unbounded.sql import Row
        from unbounded.sql.streaming_state import StatefulProcessor
    logic = {"tws-sessions": _SessionLogic, "tws-ticks": _TickLogic,
             "tws-rows": _RowSessionLogic}[case]
    return type(logic.__name__.strip("_"), (logic, StatefulProcessor), {"Row": Row})()


def _tws_query(session: Any, folder: str, case: str, pyspark: bool) -> Any:
    events = (session.readStream.schema("user STRING, amount LONG, ts TIMESTAMP")
              .option("maxFilesPerTrigger", 1).json(folder))
    if case == "tws-rows":
        return (events.withWatermark("ts", "15 minutes").groupBy("user")
                .transformWithState(_processor(case, pyspark), "user string, kind string, "
                                    "start long, n long, how string", "Append", "EventTime"))
    if case == "tws-sessions":
        return (events.withWatermark("ts", "15 minutes").groupBy("user")
                .transformWithStateInPandas(
                    _processor(case, pyspark), "user string, kind string, start long, "
                    "end long, amounts string, counts string, watermark long", "Append",
                    "EventTime"))
    return events.groupBy("user").transformWithStateInPandas(
        _processor(case, pyspark), "user string, kind string, n long, detail string",
        "Update", "ProcessingTime")


def _run_tws(session: Any, folder: str, case: str, checkpoint: str,
             pyspark: bool) -> Counter[tuple]:
    """Rows of the data batches (one per file). A processing-time query runs under the
    default trigger until its last file's batch is done, then stops: Spark 4.3 runs
    another no-data batch after every batch in processing-time mode (so neither
    availableNow nor processAllAvailable ever ends), and what those emit depends on the
    clock."""
    rows: list[Any] = []
    done: list[int] = []

    def keep(df: Any, batch_id: int) -> None:
        rows.extend((batch_id, *r) for r in df.collect())
        done.append(batch_id)

    mode = "update" if case == "tws-ticks" else "append"
    writer = (_tws_query(session, folder, case, pyspark).writeStream.outputMode(mode)
              .foreachBatch(keep).option("checkpointLocation", checkpoint))
    if case != "tws-ticks":
        writer.trigger(availableNow=True).start().awaitTermination()
        return Counter(tuple(r[1:]) for r in rows)
    query = writer.start()
    deadline = time.monotonic() + 600
    while FILES - 1 not in done and query.isActive and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()
    assert FILES - 1 in done, query.exception()
    return Counter(tuple(r[1:]) for r in rows if r[0] < FILES)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", ["tws-sessions", "tws-ticks", "tws-rows"])
def test_transform_with_state_in_pandas_matches_spark(ours, pyspark_session, tmp_path, seed,
                                                      case):
    pyspark_session.conf.set("spark.sql.streaming.stateStore.providerClass",
                             "org.apache.spark.sql.execution.streaming.state."
                             "RocksDBStateStoreProvider")
    folder = _event_files(tmp_path, seed)
    theirs = _run_tws(pyspark_session, folder, case, str(tmp_path / "cp-spark"), True)
    mine = _run_tws(ours, folder, case, str(tmp_path / "cp-ours"), False)
    assert sum(mine.values()) > 0
    assert mine == theirs

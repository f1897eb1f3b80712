"""``format("statestore")`` over a transformWithStateInPandas checkpoint: ``stateVarName``
(value, list and map state; ``flattenCollectionTypes``; TTL), ``readRegisteredTimers``,
``batchId``, Spark's errors, and ``format("state-metadata")``; columns as PySpark 4.3
gives them (``test_state_reader_spark_oracle.py`` compares the two live)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from unbounded.checkpoint.checksum import accept_unverified
from unbounded.errors import CheckpointCorruptError, SparkRuntimeException
from unbounded.runtime import microbatch
from unbounded.sql import DataFrame, SparkSession
from unbounded.sql.streaming_state import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)
from unbounded.state.transform_meta import OperatorInfo, TransformWithStateFile
from unbounded.testing import MemoryStream

T0 = 1_000_000  # batch timestamps (ms) come from the injected clock
TTL = 60_000


class Clock:
    def __init__(self, start_ms: int) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now


class Profile(StatefulProcessor):
    """Every kind of state, with and without TTL, and a timer 30 s after each batch."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.count = handle.getValueState("count", "n long")
        self.seen = handle.getListState("seen", "v long")
        self.last = handle.getMapState("last", "w string", "v long")
        self.recent = handle.getValueState("recent", "v long", TTL)
        self.window = handle.getListState("window", "v long", TTL)
        self.tags = handle.getMapState("tags", "w string", "v long", TTL)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        n = (self.count.get() or (0,))[0]
        for pdf in rows:
            for w, v in zip(pdf["w"], pdf["v"], strict=True):
                n += 1
                self.seen.appendValue((int(v),))
                self.window.appendValue((int(v),))
                self.last.updateValue((w,), (int(v),))
                self.tags.updateValue((w,), (int(v),))
                self.recent.update((int(v),))
        self.count.update((n,))
        self.handle.registerTimer(timerValues.getCurrentProcessingTimeInMs() + 30_000)
        yield pd.DataFrame({"k": [key[0]], "n": [n]})

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[pd.DataFrame]:
        yield pd.DataFrame({"k": [key[0]], "n": [-1]})


def _profile(spark: SparkSession, cp: Path, clock: Clock, *, expire: bool = False) -> str:
    """Batch 0 at T0: a (x,1) (y,2), b (x,3), c (z,5); batch 1 at T0+10s: a (x,4); with ``expire``
    batch 2 at T0+65s fires the timers and evicts what the TTL ended."""
    stream = MemoryStream("k STRING, w STRING, v LONG", spark)
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        Profile(), "k string, n long", "Update", "ProcessingTime")
    q = (df.writeStream.format("noop").outputMode("update")
         .option("checkpointLocation", str(cp)).start())
    stream.addData([("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("c", "z", 5)])
    q.processAllAvailable(30)
    clock.now += 10_000
    stream.addData([("a", "x", 4)])
    q.processAllAvailable(30)
    if expire:
        clock.now += 55_000
        q.processAllAvailable(30)
    q.stop()
    return str(cp)


@pytest.fixture
def checkpoint(spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    clock = Clock(T0)
    monkeypatch.setattr(microbatch, "now_ms", clock)
    return _profile(spark, tmp_path / "cp", clock)


def _read(spark: SparkSession, cp: str, **options: Any) -> DataFrame:
    return spark.read.format("statestore").options(**options).load(cp)


def _rows(df: DataFrame) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_a_value_state_reads_per_key_at_the_last_and_at_an_earlier_batch(spark, checkpoint):
    df = _read(spark, checkpoint, stateVarName="count")
    assert df.schema.simpleString() == \
        "struct<key:struct<k:string>,value:struct<n:bigint>,partition_id:int>"
    assert _rows(df) == [(("a",), (3,), 1), (("b",), (1,), 1), (("c",), (1,), 0)]
    assert _rows(_read(spark, checkpoint, stateVarName="count", batchId=0)) == [
        (("a",), (2,), 1), (("b",), (1,), 1), (("c",), (1,), 0)]


def test_a_list_state_gives_a_row_per_element_or_one_array_per_key(spark, checkpoint):
    flat = _read(spark, checkpoint, stateVarName="seen")
    assert flat.schema.simpleString() == \
        "struct<key:struct<k:string>,list_element:struct<v:bigint>,partition_id:int>"
    assert _rows(flat) == [(("a",), (1,), 1), (("a",), (2,), 1), (("a",), (4,), 1),
                           (("b",), (3,), 1), (("c",), (5,), 0)]
    nested = _read(spark, checkpoint, stateVarName="seen", flattenCollectionTypes="false")
    assert nested.schema.simpleString() == \
        "struct<key:struct<k:string>,list_value:array<struct<v:bigint>>,partition_id:int>"
    assert sorted((r.key.k, [e.v for e in r.list_value]) for r in nested.collect()) == [
        ("a", [1, 2, 4]), ("b", [3]), ("c", [5])]


def test_a_map_state_gives_a_row_per_entry_or_one_map_per_key(spark, checkpoint):
    flat = _read(spark, checkpoint, stateVarName="last")
    assert flat.schema.simpleString() == ("struct<key:struct<k:string>,user_map_key:"
                                          "struct<w:string>,user_map_value:struct<v:bigint>,"
                                          "partition_id:int>")
    assert _rows(flat) == [(("a",), ("x",), (4,), 1), (("a",), ("y",), (2,), 1),
                           (("b",), ("x",), (3,), 1), (("c",), ("z",), (5,), 0)]
    nested = _read(spark, checkpoint, stateVarName="last", flattenCollectionTypes="False")
    assert nested.schema.simpleString() == ("struct<key:struct<k:string>,map_value:"
                                            "map<struct<w:string>,struct<v:bigint>>,"
                                            "partition_id:int>")
    assert {r.key.k: {k.w: v.v for k, v in r.map_value.items()} for r in nested.collect()} \
        == {"a": {"x": 4, "y": 2}, "b": {"x": 3}, "c": {"z": 5}}


def test_values_with_a_ttl_show_their_expiry_as_spark_does(spark, checkpoint):
    value = _read(spark, checkpoint, stateVarName="recent")
    assert value.schema.simpleString() == ("struct<key:struct<k:string>,value:struct<value:"
                                           "struct<v:bigint>,ttlExpirationMs:bigint>,"
                                           "partition_id:int>")
    assert _rows(value) == [(("a",), ((4,), T0 + 10_000 + TTL), 1),
                            (("b",), ((3,), T0 + TTL), 1), (("c",), ((5,), T0 + TTL), 0)]
    assert _rows(_read(spark, checkpoint, stateVarName="window")) == [
        (("a",), ((1,), T0 + TTL), 1), (("a",), ((2,), T0 + TTL), 1),
        (("a",), ((4,), T0 + 10_000 + TTL), 1), (("b",), ((3,), T0 + TTL), 1),
        (("c",), ((5,), T0 + TTL), 0)]
    tags = _read(spark, checkpoint, stateVarName="tags", flattenCollectionTypes="false")
    assert tags.schema.simpleString() == (
        "struct<key:struct<k:string>,map_value:map<struct<w:string>,struct<value:"
        "struct<v:bigint>,ttlExpirationMs:bigint>>,partition_id:int>")
    assert {r.key.k: {k.w: tuple(v) for k, v in r.map_value.items()}
            for r in tags.collect()} == {
        "a": {"x": ((4,), T0 + 10_000 + TTL), "y": ((2,), T0 + TTL)},
        "b": {"x": ((3,), T0 + TTL)}, "c": {"z": ((5,), T0 + TTL)}}


def test_registered_timers_are_listed_per_key_and_expiry(spark, checkpoint):
    df = _read(spark, checkpoint, readRegisteredTimers=True)
    assert df.schema.simpleString() == \
        "struct<key:struct<k:string>,expiration_timestamp_ms:bigint,partition_id:int>"
    assert _rows(df) == [(("a",), T0 + 30_000, 1), (("a",), T0 + 40_000, 1),
                         (("b",), T0 + 30_000, 1), (("c",), T0 + 30_000, 0)]
    assert _rows(_read(spark, checkpoint, readRegisteredTimers="true", batchId=0)) == [
        (("a",), T0 + 30_000, 1), (("b",), T0 + 30_000, 1), (("c",), T0 + 30_000, 0)]


def test_fired_timers_and_expired_values_are_gone_from_the_read(spark, tmp_path, monkeypatch):
    clock = Clock(T0)
    monkeypatch.setattr(microbatch, "now_ms", clock)
    cp = _profile(spark, tmp_path / "cp", clock, expire=True)  # batch 2 at T0 + 65 s
    assert _rows(_read(spark, cp, readRegisteredTimers=True)) == []
    assert _rows(_read(spark, cp, stateVarName="recent")) == [
        (("a",), ((4,), T0 + 10_000 + TTL), 1)]
    assert _rows(_read(spark, cp, stateVarName="window")) == [
        (("a",), ((4,), T0 + 10_000 + TTL), 1)]
    assert _rows(_read(spark, cp, stateVarName="tags")) == [
        (("a",), ("x",), ((4,), T0 + 10_000 + TTL), 1)]
    assert _rows(_read(spark, cp, stateVarName="count")) == [
        (("a",), (3,), 1), (("b",), (1,), 1), (("c",), (1,), 0)]


def _unrecorded(cp: str) -> str:
    """The checkpoint as one written before the operator recorded its declarations:
    the reader infers them from the stores."""
    Path(cp, "state", "0", "_metadata", "transform-with-state").unlink(missing_ok=True)
    return cp


def test_state_metadata_lists_the_operator_as_one_default_store(spark, checkpoint):
    _unrecorded(checkpoint)
    rows = [tuple(r) for r in spark.read.format("state-metadata").load(checkpoint).collect()]
    assert rows == [(0, "transformWithStateInPandasExec", "default", 2, 0, 1, None)]


def _record(cp: str, time_mode: str) -> None:
    """What the operator records at its start (the hook ``runtime/stateful/
    transform_state.py`` calls; written here for the checkpoints of these tests)."""
    TransformWithStateFile(str(Path(cp, "state")), 0).write(OperatorInfo.of(
        "transformWithStateInPandasExec", time_mode, "update",
        [("count", "value", False), ("seen", "list", False), ("last", "map", False),
         ("recent", "value", True), ("window", "list", True), ("tags", "map", True)]))


def test_recorded_declarations_give_spark_operator_properties(spark, checkpoint):
    _record(checkpoint, "ProcessingTime")
    row = spark.read.format("state-metadata").load(checkpoint).collect()[0]
    assert json.loads(row.operatorProperties) == {
        "timeMode": "ProcessingTime", "outputMode": "Update", "stateVariables": [
            {"stateName": "count", "stateVariableType": "ValueState", "ttlEnabled": False},
            {"stateName": "seen", "stateVariableType": "ListState", "ttlEnabled": False},
            {"stateName": "last", "stateVariableType": "MapState", "ttlEnabled": False},
            {"stateName": "recent", "stateVariableType": "ValueState", "ttlEnabled": True},
            {"stateName": "window", "stateVariableType": "ListState", "ttlEnabled": True},
            {"stateName": "tags", "stateVariableType": "MapState", "ttlEnabled": True},
            {"stateName": "$procTimers_keyToTimestamp", "stateVariableType": "TimerState",
             "ttlEnabled": False}]}


def test_the_operator_records_its_declarations_for_operator_properties(spark, checkpoint):
    """No hand-written record: the running operator wrote state/0/_metadata/
    transform-with-state at its start, so state-metadata shows Spark's properties."""
    assert Path(checkpoint, "state", "0", "_metadata", "transform-with-state").exists()
    row = spark.read.format("state-metadata").load(checkpoint).collect()[0]
    assert row.operatorName == "transformWithStateInPandasExec"
    properties = json.loads(row.operatorProperties)
    assert (properties["timeMode"], properties["outputMode"]) == ("ProcessingTime", "Update")
    assert [(v["stateName"], v["stateVariableType"], v["ttlEnabled"])
            for v in properties["stateVariables"]] == [
        ("count", "ValueState", False), ("seen", "ListState", False),
        ("last", "MapState", False), ("recent", "ValueState", True),
        ("window", "ListState", True), ("tags", "MapState", True),
        ("$procTimers_keyToTimestamp", "TimerState", False)]


class Unused(StatefulProcessor):
    """A TTL list state that no key ever writes: an empty store."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.unused = handle.getListState("unused", "v long", TTL)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        yield pd.DataFrame({"k": [key[0]]})


def test_a_recorded_ttl_gives_the_ttl_columns_even_for_an_empty_variable(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    df = stream.toDF().groupBy("k").transformWithStateInPandas(Unused(), "k string",
                                                               "Update", "ProcessingTime")
    q = df.writeStream.format("noop").option("checkpointLocation", str(tmp_path)).start()
    stream.addData([("a",)])
    q.processAllAvailable(30)
    q.stop()
    # inferred, an empty variable shows no TTL
    inferred = _read(spark, _unrecorded(str(tmp_path)), stateVarName="unused")
    assert inferred.schema["list_element"].dataType.simpleString() == "struct<v:bigint>"
    TransformWithStateFile(str(tmp_path / "state"), 0).write(OperatorInfo.of(
        "transformWithStateInPandasExec", "ProcessingTime", "update",
        [("unused", "list", True)]))
    recorded = _read(spark, str(tmp_path), stateVarName="unused")
    assert recorded.schema.simpleString() == (
        "struct<key:struct<k:string>,list_element:struct<value:struct<v:bigint>,"
        "ttlExpirationMs:bigint>,partition_id:int>")
    assert recorded.collect() == []


@pytest.mark.parametrize(("options", "message"), [
    ({}, "[STDS_REQUIRED_OPTION_UNSPECIFIED] 'stateVarName' must be specified."),
    ({"readRegisteredTimers": "false"}, "'stateVarName' must be specified."),
    ({"stateVarName": "nope"}, "[STDS_INVALID_OPTION_VALUE.WITH_MESSAGE] Invalid value for "
     "source option 'stateVarName': State variable nope is not defined for the "
     "transformWithState operator."),
    ({"stateVarName": "count", "readRegisteredTimers": "true"}, "[STDS_CONFLICT_OPTIONS] The "
     "options ['readRegisteredTimers', 'stateVarName'] cannot be specified together."),
    ({"stateVarName": "count", "flattenCollectionTypes": "maybe"}, "Invalid value for source "
     "option 'flattenCollectionTypes': Boolean value is expected"),
    ({"readRegisteredTimers": "yes"}, "Invalid value for source option "
     "'readRegisteredTimers': Boolean value is expected"),
])
def test_spark_errors_for_the_transform_with_state_options(spark, checkpoint, options,
                                                          message):
    with pytest.raises(SparkRuntimeException) as info:
        _read(spark, checkpoint, **options)
    assert message in str(info.value)
    assert str(info.value).startswith(f"[{info.value.error_class}]")
    assert info.value.error_class.startswith("STDS_")


class Counter(StatefulProcessor):
    def init(self, handle: StatefulProcessorHandle) -> None:
        self.count = handle.getValueState("count", "n long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        n = (self.count.get() or (0,))[0] + sum(len(pdf) for pdf in rows)
        self.count.update((n,))
        yield pd.DataFrame({"k": [key[0]], "n": [n]})


def _no_time(spark: SparkSession, cp: Path) -> str:
    stream = MemoryStream("k STRING", spark)
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        Counter(), "k string, n long", "Update", "None")
    q = df.writeStream.format("noop").option("checkpointLocation", str(cp)).start()
    stream.addData([("a",), ("b",), ("a",)])
    q.processAllAvailable(30)
    q.stop()
    return str(cp)


def test_timers_of_a_time_mode_none_operator_are_refused_once_recorded(spark, tmp_path):
    cp = _unrecorded(_no_time(spark, tmp_path / "cp"))
    assert _rows(_read(spark, cp, readRegisteredTimers=True)) == []  # not recorded: none
    TransformWithStateFile(str(tmp_path / "cp" / "state"), 0).write(
        OperatorInfo.of("transformWithStateInPandasExec", "None", "update",
                        [("count", "value", False)]))
    with pytest.raises(SparkRuntimeException, match=re.escape(
            "Invalid value for source option 'readRegisteredTimers': Registered timers are "
            "not available in TimeMode=None.")):
        _read(spark, cp, readRegisteredTimers=True)
    properties = spark.read.format("state-metadata").load(cp).collect()[0].operatorProperties
    assert json.loads(properties)["stateVariables"] == [
        {"stateName": "count", "stateVariableType": "ValueState", "ttlEnabled": False}]


def test_a_raw_store_of_the_operator_is_still_read_by_its_store_name(spark, checkpoint):
    raw = _read(spark, checkpoint, storeName="var-count")
    assert raw.schema.simpleString() == ("struct<key:struct<k:string>,value:struct<__value:"
                                         "struct<n:bigint>,__expires_ms:bigint>,"
                                         "partition_id:int>")
    assert _rows(raw) == [(("a",), ((3,), -1), 1), (("b",), ((1,), -1), 1),
                          (("c",), ((1,), -1), 0)]


@pytest.mark.parametrize("option", [{"stateVarName": "count"},
                                    {"readRegisteredTimers": "true"}])
def test_the_options_on_another_operator_fail_as_in_spark(spark, tmp_path, option):
    stream = MemoryStream("k STRING", spark)
    cp = tmp_path / "cp"
    q = (stream.toDF().groupBy("k").count().writeStream.format("noop")
         .outputMode("complete").option("checkpointLocation", str(cp)).start())
    stream.addData([("a",)])
    q.processAllAvailable(30)
    q.stop()
    name, = option
    what = "state variable names" if name == "stateVarName" else "readRegisteredTimers=true"
    with pytest.raises(SparkRuntimeException, match=re.escape(
            f"Invalid value for source option '{name}': Providing {what} is only supported "
            "with the transformWithState operator. Found operator=stateStoreSave. Please "
            "remove this option and re-run the query.")):
        _read(spark, str(cp), **option)


def test_a_variable_whose_name_is_not_path_safe_is_read_by_its_name(spark, tmp_path):
    class Spaced(StatefulProcessor):
        def init(self, handle: StatefulProcessorHandle) -> None:
            self.state = handle.getValueState("last word", "w string")

        def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                            timerValues: TimerValues) -> Iterator[pd.DataFrame]:
            for pdf in rows:
                self.state.update((str(pdf["k"].iloc[-1]),))
            yield pd.DataFrame({"k": [key[0]]})

    stream = MemoryStream("k STRING", spark)
    df = stream.toDF().groupBy("k").transformWithStateInPandas(Spaced(), "k string",
                                                               "Update", "None")
    q = df.writeStream.format("noop").option("checkpointLocation", str(tmp_path)).start()
    stream.addData([("a",)])
    q.processAllAvailable(30)
    q.stop()
    assert _rows(_read(spark, str(tmp_path), stateVarName="last word")) == [
        (("a",), ("a",), 1)]


def test_the_declarations_file_rejects_another_format_version(tmp_path):
    record = TransformWithStateFile(str(tmp_path), 0)
    record.write(OperatorInfo.of("transformWithStateInPandasExec", "EventTime", "append",
                                 [("s", "map", True)]))
    assert record.read() == OperatorInfo.of("transformWithStateInPandasExec", "EventTime",
                                            "append", [("s", "map", True)])
    doc = json.loads(Path(record.path).read_text())
    Path(record.path).write_text(json.dumps({**doc, "version": 2}))
    accept_unverified(record.path)  # a well-formed file of another version, not damage
    with pytest.raises(CheckpointCorruptError, match="format version 2"):
        record.read()


class Deadline(StatefulProcessor):
    """Row-based (transformWithState): the last event time per key and a timer 10
    minutes after it, in event time."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.last = handle.getValueState("last", "ts timestamp")

    def handleInputRows(self, key: Any, rows: Iterator[Any],
                        timerValues: TimerValues) -> Iterator[Any]:
        newest = max(r.ts for r in rows)
        self.last.update((newest,))
        self.handle.registerTimer(int(newest.timestamp() * 1000) + 600_000)
        return iter([])


def test_row_based_event_time_state_and_timers_read_like_pandas_ones(spark, tmp_path):
    import datetime as dt

    utc = dt.UTC
    stream = MemoryStream("user STRING, ts TIMESTAMP", spark)
    df = (stream.toDF().withWatermark("ts", "1 hour").groupBy("user")
          .transformWithState(Deadline(), "user string", "Append", "EventTime"))
    q = (df.writeStream.format("noop").outputMode("append")
         .option("checkpointLocation", str(tmp_path)).start())
    t0 = dt.datetime(2026, 1, 1, 10, 0)
    stream.addData([("a", t0), ("b", t0 + dt.timedelta(minutes=3)),
                    ("a", t0 + dt.timedelta(minutes=1))])
    q.processAllAvailable(30)
    q.stop()
    stamp = int(t0.replace(tzinfo=utc).timestamp() * 1000)
    timers = _read(spark, str(tmp_path), readRegisteredTimers=True)
    assert timers.schema.simpleString() == \
        "struct<key:struct<user:string>,expiration_timestamp_ms:bigint,partition_id:int>"
    assert _rows(timers) == [(("a",), stamp + 660_000, 1), (("b",), stamp + 780_000, 1)]
    last = _read(spark, str(tmp_path), stateVarName="last")
    assert last.schema.simpleString() == \
        "struct<key:struct<user:string>,value:struct<ts:timestamp>,partition_id:int>"
    assert sorted((r.key.user, r.value.ts) for r in last.collect()) == [
        ("a", t0 + dt.timedelta(minutes=1)), ("b", t0 + dt.timedelta(minutes=3))]

"""timestampFormat, timestampNTZFormat, dateFormat and timeZone in the csv/JSON readers,
writers and csv schema inference. Every expected value is what PySpark 4.3 gave for the
same files and options (session zone America/Los_Angeles, local[1])."""

from __future__ import annotations

import datetime as dt
import glob
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from unbounded.errors import AnalysisException, MalformedRecordError
from unbounded.files.formats import infer_schema, read_files
from unbounded.files.writing import write_data_file
from unbounded.sql import SparkSession
from unbounded.sql.types import StructType

LA = "America/Los_Angeles"
UTC = dt.UTC
SCHEMA = StructType.fromDDL("ts TIMESTAMP, d DATE, n TIMESTAMP_NTZ, _corrupt_record STRING")
FORMATS = {"timestampFormat": "dd/MM/yyyy HH:mm", "dateFormat": "dd/MM/yyyy",
           "timestampNTZFormat": "dd/MM/yyyy HH:mm:ss", "timeZone": LA}
CSV = ("08/03/2026 10:00,08/03/2026,08/03/2026 10:00:05\n"
       "2026-03-08 10:00:00,2026-03-08,2026-03-08T10:00:00\n"
       "8/3/2026 1:02,8/3/2026,8/3/2026 1:02:03\n")
JSON = ('{"ts":"08/03/2026 10:00","d":"08/03/2026","n":"08/03/2026 10:00:05"}\n'
        '{"ts":"2026-03-08 10:00:00","d":"2026-03-08","n":"2026-03-08T10:00:00"}\n'
        '{"ts":1700000000,"d":"8/3/2026","n":"8/3/2026 1:02:03"}\n')
GOOD = {"ts": dt.datetime(2026, 3, 8, 17, 0, tzinfo=UTC), "d": dt.date(2026, 3, 8),
        "n": dt.datetime(2026, 3, 8, 10, 0, 5), "_corrupt_record": None}


def write(folder: Path, name: str, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return str(folder)


def nulls(raw: str) -> dict[str, object]:
    return {"ts": None, "d": None, "n": None, "_corrupt_record": raw}


def test_csv_reads_with_each_pattern_and_a_mismatch_is_a_corrupt_record(tmp_path: Path):
    rows = read_files("csv", [write(tmp_path, "a.csv", CSV)], SCHEMA, FORMATS).to_pylist()
    assert rows == [GOOD, nulls("2026-03-08 10:00:00,2026-03-08,2026-03-08T10:00:00"),
                    nulls("8/3/2026 1:02,8/3/2026,8/3/2026 1:02:03")]


def test_the_time_zone_option_says_where_a_pattern_without_offset_is_wall_clock(
        tmp_path: Path):
    folder = write(tmp_path, "a.csv", CSV)
    rows = read_files("csv", [folder], SCHEMA, {**FORMATS, "timeZone": "Asia/Kolkata"})
    assert rows.to_pylist()[0] == {**GOOD, "ts": dt.datetime(2026, 3, 8, 4, 30, tzinfo=UTC)}


def test_failfast_stops_at_the_first_value_that_does_not_match(tmp_path: Path):
    folder = write(tmp_path, "a.csv", CSV)
    with pytest.raises(MalformedRecordError, match="at line 2"):
        read_files("csv", [folder], SCHEMA, {**FORMATS, "mode": "FAILFAST"})


def test_dropmalformed_keeps_only_the_rows_that_match(tmp_path: Path):
    folder = write(tmp_path, "a.csv", CSV)
    rows = read_files("csv", [folder], SCHEMA, {**FORMATS, "mode": "DROPMALFORMED"})
    assert rows.to_pylist() == [GOOD]


@pytest.mark.parametrize(("pattern", "read"), [
    ("yyyy-MM-dd HH:mm:ss.SSS", [500000, 123000, None, None]),
    ("yyyy-MM-dd HH:mm:ss.SSSSSS", [500000, 123000, 123456, None]),
    ("yyyy-MM-dd HH:mm:ss[.SSS]", [500000, 123000, None, 0]),
])
def test_a_fraction_reads_up_to_its_letters_digits_and_a_section_may_be_absent(
        tmp_path: Path, pattern: str, read: list[int | None]):
    folder = write(tmp_path, "a.csv", "2026-03-08 10:00:00.5\n2026-03-08 10:00:00.123\n"
                   "2026-03-08 10:00:00.123456\n2026-03-08 10:00:00\n")
    table = read_files("csv", [folder], StructType.fromDDL("ts TIMESTAMP"),
                       {"timestampFormat": pattern, "timeZone": LA})
    expected = [None if us is None else dt.datetime(2026, 3, 8, 17, 0, 0, us, tzinfo=UTC)
                for us in read]
    assert table.column("ts").to_pylist() == expected


def test_a_pattern_with_an_offset_names_the_instant_and_ntz_refuses_it(tmp_path: Path):
    folder = write(tmp_path, "a.csv", "2026-03-08T10:00:00+05:30\n2026-03-08T10:00:00Z\n"
                   "2026-03-08T10:00:00\n")
    pattern = "yyyy-MM-dd'T'HH:mm:ssXXX"
    aware = read_files("csv", [folder], StructType.fromDDL("ts TIMESTAMP"),
                       {"timestampFormat": pattern, "timeZone": LA})
    assert aware.column("ts").to_pylist() == [dt.datetime(2026, 3, 8, 4, 30, tzinfo=UTC),
                                              dt.datetime(2026, 3, 8, 10, 0, tzinfo=UTC),
                                              None]
    naive = read_files("csv", [folder], StructType.fromDDL("ts TIMESTAMP_NTZ"),
                       {"timestampNTZFormat": pattern})
    assert naive.column("ts").to_pylist() == [None, None, None]


def test_a_date_format_reads_dates_and_not_timestamps(tmp_path: Path):
    folder = write(tmp_path, "a.csv", "20260308,1\n2026-03-08,2\n")
    options = {"dateFormat": "yyyyMMdd", "timeZone": LA}
    dates = read_files("csv", [folder], StructType.fromDDL("d DATE, i INT"), options)
    assert dates.column("d").to_pylist() == [dt.date(2026, 3, 8), None]
    instants = read_files("csv", [folder], StructType.fromDDL("d TIMESTAMP, i INT"), options)
    assert instants.column("d").to_pylist() == [None, dt.datetime(2026, 3, 8, 8, tzinfo=UTC)]


@pytest.mark.parametrize(("pattern", "read"), [
    ("dd MMM yyyy hh:mm a", [dt.datetime(2026, 3, 9, 5, tzinfo=UTC),
                             dt.datetime(2026, 3, 8, 17, tzinfo=UTC), None, None]),
    ("dd MMMM yyyy hh:mm a", [None, None, None, dt.datetime(2026, 3, 9, 5, tzinfo=UTC)]),
])
def test_month_names_read_in_any_case_short_for_mmm_and_full_for_mmmm(
        tmp_path: Path, pattern: str, read: list[dt.datetime | None]):
    folder = write(tmp_path, "a.csv", "08 Mar 2026 10:00 PM,x\n08 mar 2026 10:00 AM,y\n"
                   "8 Mar 2026 10:00 PM,z\n08 March 2026 10:00 PM,w\n")
    table = read_files("csv", [folder], StructType.fromDDL("ts TIMESTAMP, s STRING"),
                       {"timestampFormat": pattern, "timeZone": LA})
    assert table.column("ts").to_pylist() == read


def test_surrounding_spaces_do_not_match_a_pattern(tmp_path: Path):
    folder = write(tmp_path, "a.csv", " 2026-03-08 10:00, 2026-03-08\n")
    rows = read_files("csv", [folder], StructType.fromDDL(
        "ts TIMESTAMP, d DATE, _corrupt_record STRING"),
        {"timestampFormat": "yyyy-MM-dd HH:mm", "dateFormat": "yyyy-MM-dd"}).to_pylist()
    assert rows == [{"ts": None, "d": None, "_corrupt_record": " 2026-03-08 10:00, 2026-03-08"}]


def test_a_pattern_spark_cannot_parse_with_fails_before_reading(tmp_path: Path):
    folder = write(tmp_path, "a.csv", "x\n")
    with pytest.raises(AnalysisException, match="ILLEGAL_CHARACTER"):
        read_files("csv", [folder], StructType.fromDDL("ts TIMESTAMP"),
                   {"timestampFormat": "yyyy QQQ"})


def test_json_reads_top_level_and_nested_values_with_the_patterns_an_integer_as_epoch(
        tmp_path: Path):
    rows = read_files("json", [write(tmp_path, "a.json", JSON)], SCHEMA, FORMATS)
    epoch = {**nulls(JSON.splitlines()[2]), "ts": dt.datetime(2023, 11, 14, 22, 13, 20,
                                                               tzinfo=UTC)}
    assert rows.to_pylist() == [GOOD, nulls(JSON.splitlines()[1]), epoch]
    nested = write(tmp_path / "n", "a.json", '{"a":{"ts":"08/03/2026 10:00"},"l":['
                   '"08/03/2026 11:00"],"m":{"k":"08/03/2026 12:00"},"ds":["08/03/2026"]}\n')
    schema = StructType.fromDDL("a STRUCT<ts: TIMESTAMP>, l ARRAY<TIMESTAMP>, "
                                "m MAP<STRING, TIMESTAMP>, ds ARRAY<DATE>")
    row = read_files("json", [nested], schema, FORMATS).to_pylist()[0]
    assert row == {"a": {"ts": dt.datetime(2026, 3, 8, 17, tzinfo=UTC)},
                   "l": [dt.datetime(2026, 3, 8, 18, tzinfo=UTC)],
                   "m": [("k", dt.datetime(2026, 3, 8, 19, tzinfo=UTC))],
                   "ds": [dt.date(2026, 3, 8)]}


def test_a_nested_date_reads_in_the_default_shape_and_marks_its_record_when_it_cannot(
        tmp_path: Path):
    folder = write(tmp_path, "a.json", '{"s":{"d":"2026-03-08"}}\n{"s":{"d":"08/03/2026"}}\n')
    schema = StructType.fromDDL("s STRUCT<d: DATE>, _corrupt_record STRING")
    rows = read_files("json", [folder], schema, {}).to_pylist()
    assert rows == [{"s": {"d": dt.date(2026, 3, 8)}, "_corrupt_record": None},
                    {"s": {"d": None}, "_corrupt_record": '{"s":{"d":"08/03/2026"}}'}]


INFER_CSV = ("a,b,c,d,e,f,g\n"
             "2026-03-08,2026-03-08 10:00:00,08/03/2026 10:00,2026-03-08,"
             "2026-03-08T10:00:00Z,08/03/2026,2026-03-08T10:00:00.123\n"
             "2026-03-09,2026-03-09 11:00:00,09/03/2026 11:00,2026-03-08 10:00:00,"
             "2026-03-08T10:00:00+01:00,09/03/2026,2026-03-08 10:00\n")


@pytest.mark.parametrize(("options", "types"), [
    ({}, "date,timestamp,string,timestamp,timestamp,string,timestamp"),
    ({"timestampFormat": "dd/MM/yyyy HH:mm"},
     "date,string,timestamp,string,string,string,string"),
    ({"dateFormat": "dd/MM/yyyy"}, "timestamp,timestamp,string,timestamp,timestamp,date,"
     "timestamp"),
    ({"timestampFormat": "dd/MM/yyyy HH:mm", "dateFormat": "dd/MM/yyyy"},
     "string,string,timestamp,string,string,date,string"),
    ({"preferDate": "false"}, "timestamp,timestamp,string,timestamp,timestamp,string,"
     "timestamp"),
    ({"preferDate": "false", "dateFormat": "dd/MM/yyyy"},
     "timestamp,timestamp,string,timestamp,timestamp,string,timestamp"),
    ({"timestampFormat": "yyyy-MM-dd HH:mm:ss"},
     "date,timestamp,string,string,string,string,string"),
])
def test_csv_inference_takes_a_date_or_timestamp_only_for_values_its_patterns_read(
        tmp_path: Path, options: dict[str, str], types: str):
    folder = write(tmp_path, "a.csv", INFER_CSV)
    schema = infer_schema("csv", [folder], {"header": "true", "inferSchema": "true",
                                            "timeZone": LA, **options})
    assert ",".join(f.dataType.simpleString() for f in schema.fields) == types


def test_inferred_timestamps_read_with_the_pattern_that_inferred_them(tmp_path: Path):
    folder = write(tmp_path, "a.csv", INFER_CSV)
    options = {"header": "true", "inferSchema": "true", "timeZone": LA,
               "timestampFormat": "dd/MM/yyyy HH:mm"}
    column = read_files("csv", [folder], infer_schema("csv", [folder], options),
                        options).column("c")
    assert column.to_pylist() == [dt.datetime(2026, 3, 8, 17, tzinfo=UTC),
                                  dt.datetime(2026, 3, 9, 18, tzinfo=UTC)]


# ---- writing ---------------------------------------------------------------------------
def temporal_table() -> pa.Table:
    ts = pa.timestamp("us", "UTC")
    return pa.table({
        "ts": pa.array([dt.datetime(2026, 3, 8, 17, 0, 0, 123456, tzinfo=UTC)], ts),
        "d": pa.array([dt.date(2026, 3, 8)]),
        "n": pa.array([dt.datetime(2026, 3, 8, 10, 0, 0, 500000)], pa.timestamp("us")),
        "ts2": pa.array([dt.datetime(2026, 7, 1, 7, tzinfo=UTC)], ts),
    })


def nested_table() -> pa.Table:
    struct = pa.struct([("t", pa.timestamp("us", "UTC")), ("d", pa.date32())])
    return temporal_table().append_column(
        "s", pa.array([{"t": dt.datetime(2026, 1, 1, 8, tzinfo=UTC),
                        "d": dt.date(2026, 1, 2)}], struct)).append_column(
        "a", pa.array([[dt.datetime(2026, 1, 1, 8, tzinfo=UTC)]],
                      pa.list_(pa.timestamp("us", "UTC"))))


def written(tmp_path: Path, fmt: str, table: pa.Table, options: dict[str, str]) -> str:
    path = str(tmp_path / f"part.{fmt}")
    write_data_file(path, fmt, table, options)
    return Path(path).read_text()


PATTERNS = {"timestampFormat": "yyyy/MM/dd HH:mm:ss.SSS z", "dateFormat": "dd.MM.yyyy",
            "timestampNTZFormat": "yyyy/MM/dd HH:mm:ss", "timeZone": LA}


@pytest.mark.parametrize(("options", "line"), [
    ({"timeZone": LA}, "2026-03-08T10:00:00.123-07:00,2026-03-08,2026-03-08T10:00:00.500,"
     "2026-07-01T00:00:00.000-07:00"),
    (PATTERNS, "2026/03/08 10:00:00.123 PDT,08.03.2026,2026/03/08 10:00:00,"
     "2026/07/01 00:00:00.000 PDT"),
    ({"timeZone": "Asia/Kolkata"}, "2026-03-08T22:30:00.123+05:30,2026-03-08,"
     "2026-03-08T10:00:00.500,2026-07-01T12:30:00.000+05:30"),
    ({"timeZone": "UTC"}, "2026-03-08T17:00:00.123Z,2026-03-08,2026-03-08T10:00:00.500,"
     "2026-07-01T07:00:00.000Z"),
    ({"timeZone": "UTC", "timestampFormat": "yyyy-MM-dd HH:mm:ssXXX"},
     "2026-03-08 17:00:00Z,2026-03-08,2026-03-08T10:00:00.500,2026-07-01 07:00:00Z"),
])
def test_csv_writes_spark_default_shapes_or_the_patterns(tmp_path: Path,
                                                         options: dict[str, str], line: str):
    assert written(tmp_path, "csv", temporal_table(), options) == line + "\n"


@pytest.mark.parametrize(("options", "line"), [
    ({"timeZone": LA}, '{"ts":"2026-03-08T10:00:00.123-07:00","d":"2026-03-08",'
     '"n":"2026-03-08T10:00:00.500","ts2":"2026-07-01T00:00:00.000-07:00",'
     '"s":{"t":"2026-01-01T00:00:00.000-08:00","d":"2026-01-02"},'
     '"a":["2026-01-01T00:00:00.000-08:00"]}'),
    (PATTERNS, '{"ts":"2026/03/08 10:00:00.123 PDT","d":"08.03.2026",'
     '"n":"2026/03/08 10:00:00","ts2":"2026/07/01 00:00:00.000 PDT",'
     '"s":{"t":"2026/01/01 00:00:00.000 PST","d":"02.01.2026"},'
     '"a":["2026/01/01 00:00:00.000 PST"]}'),
    ({"timeZone": "Asia/Kolkata"}, '{"ts":"2026-03-08T22:30:00.123+05:30",'
     '"d":"2026-03-08","n":"2026-03-08T10:00:00.500","ts2":"2026-07-01T12:30:00.000+05:30",'
     '"s":{"t":"2026-01-01T13:30:00.000+05:30","d":"2026-01-02"},'
     '"a":["2026-01-01T13:30:00.000+05:30"]}'),
])
def test_json_writes_nested_dates_and_timestamps_alike(tmp_path: Path,
                                                       options: dict[str, str], line: str):
    assert written(tmp_path, "json", nested_table(), options) == line + "\n"


def test_an_optional_section_is_printed(tmp_path: Path):
    options = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss[.SSS]",
               "timestampNTZFormat": "yyyy-MM-dd HH:mm[:ss]", "timeZone": LA}
    text = written(tmp_path, "csv", temporal_table().select(["ts", "n"]), options)
    assert text == "2026-03-08T10:00:00.123,2026-03-08 10:00:00\n"


def test_a_format_only_pattern_letter_is_fine_for_writing(tmp_path: Path):
    text = written(tmp_path, "csv", temporal_table().select(["ts"]),
                   {"timestampFormat": "yyyy QQQ", "timeZone": "UTC"})
    assert text == "2026 Q1\n"


# ---- through the session: the session zone, batch and streaming ----------------------
@pytest.fixture
def la_spark() -> Iterator[SparkSession]:
    session = (SparkSession.builder.config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", LA).create())
    yield session
    session.stop()


def test_batch_read_and_write_take_the_session_zone(la_spark: SparkSession, tmp_path: Path):
    folder = write(tmp_path / "in", "a.csv", CSV)
    df = la_spark.read.schema("ts TIMESTAMP, d DATE").options(
        timestampFormat="dd/MM/yyyy HH:mm", dateFormat="dd/MM/yyyy").csv(folder)
    assert df.collect()[0].ts == dt.datetime(2026, 3, 8, 17)  # naive in the process's UTC
    df.write.option("timestampFormat", "yyyy-MM-dd HH:mm XXX").csv(str(tmp_path / "csv"))
    assert read_parts(tmp_path / "csv") == "2026-03-08 10:00 -07:00,2026-03-08\n,\n,\n"
    df.write.json(str(tmp_path / "json"))  # a NULL field is left out, as Spark's writer does
    assert read_parts(tmp_path / "json") == (
        '{"ts":"2026-03-08T10:00:00.000-07:00","d":"2026-03-08"}\n{}\n{}\n')


def read_parts(folder: Path) -> str:
    return "".join(Path(p).read_text() for p in sorted(glob.glob(str(folder / "part-*"))))


def test_streaming_csv_source_and_json_sink_use_the_patterns(la_spark: SparkSession,
                                                             tmp_path: Path):
    folder = write(tmp_path / "in", "a.csv", "08/03/2026 10:00,08/03/2026,x\n"
                   "2026-03-08 10:00,2026-03-08,y\n01/07/2026 23:30,01/07/2026,z\n")
    stream = (la_spark.readStream.schema("ts TIMESTAMP, d DATE, s STRING, _corrupt_record STRING")
              .option("timestampFormat", "dd/MM/yyyy HH:mm")
              .option("dateFormat", "dd/MM/yyyy").csv(folder))
    query = (stream.writeStream.format("json")
             .option("timestampFormat", "yyyy-MM-dd HH:mm:ss XXX")
             .option("dateFormat", "yyyy/MM/dd")
             .option("checkpointLocation", str(tmp_path / "ck")).trigger(availableNow=True)
             .start(str(tmp_path / "out")))
    query.awaitTermination()
    assert read_parts(tmp_path / "out") == (
        '{"ts":"2026-03-08 10:00:00 -07:00","d":"2026/03/08","s":"x"}\n'
        '{"s":"y","_corrupt_record":"2026-03-08 10:00,2026-03-08,y"}\n'
        '{"ts":"2026-07-01 23:30:00 -07:00","d":"2026/07/01","s":"z"}\n')


def test_with_parsing_fallback_a_value_the_pattern_does_not_read_is_read_as_a_cast(
        tmp_path: Path):
    text = ('{"ts":"08/03/2026 10:00","d":"08/03/2026"}\n'
            '{"ts":"2026-03-08T10:00:00Z","d":"2026-03-08T10:00"}\n{"ts":"bad","d":"bad"}\n')
    options = {**FORMATS, "enableDateTimeParsingFallback": "true"}
    rows = read_files("json", [write(tmp_path, "a.json", text)], StructType.fromDDL(
        "ts TIMESTAMP, d DATE, _corrupt_record STRING"), options).to_pylist()
    assert rows == [
        {"ts": dt.datetime(2026, 3, 8, 17, tzinfo=UTC), "d": dt.date(2026, 3, 8),
         "_corrupt_record": None},
        {"ts": dt.datetime(2026, 3, 8, 10, tzinfo=UTC), "d": dt.date(2026, 3, 8),
         "_corrupt_record": None},
        {"ts": None, "d": None, "_corrupt_record": '{"ts":"bad","d":"bad"}'}]


DATE_TEXTS = ["2026-03-08", "2026-3-8", "2026-03-08T10:00", "2026-03-08 10:00:00", "2026-03",
              "2026", "08/03/2026", " 2026-03-08 "]
DATES = [dt.date(2026, 3, 8)] * 4 + [dt.date(2026, 3, 1), dt.date(2026, 1, 1), None,
                                     dt.date(2026, 3, 8)]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_without_a_date_format_dates_read_as_spark_casts_them(tmp_path: Path, fmt: str):
    if fmt == "csv":
        text = "".join(f'"{v}",x\n' for v in DATE_TEXTS)
        schema = StructType.fromDDL("d DATE, x STRING")
    else:
        text = "".join(json.dumps({"d": v, "s": {"d": v}}, separators=(",", ":")) + "\n"
                       for v in DATE_TEXTS)
        schema = StructType.fromDDL("d DATE, s STRUCT<d: DATE>")
    table = read_files(fmt, [write(tmp_path, "a." + fmt, text)], schema, {})
    assert table.column("d").to_pylist() == DATES
    if fmt == "json":
        assert [s["d"] for s in table.column("s").to_pylist()] == DATES

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unbounded.errors import AnalysisException, MalformedRecordError
from unbounded.files.formats import infer_schema, read_files, scan_files
from unbounded.files.listing import list_data_files
from unbounded.files.manifest import FileSinkManifest
from unbounded.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

UTC = dt.UTC
CSV_SCHEMA = StructType.fromDDL("id INT, name STRING, _corrupt_record STRING")


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.fixture
def bad_csv(tmp_path: Path) -> str:
    # line 1 header, line 3 a bad int, line 4 blank, line 5 too many fields
    return write(tmp_path / "in.csv", "id,name\n1,a\nx,b\n\n3,c,extra\n4,d\n")


@pytest.fixture
def bad_json(tmp_path: Path) -> str:
    return write(tmp_path / "in.json",
                 '{"id": 1, "name": "a"}\nnot json\n{"id": "x", "name": "b"}\n{"id": 4}\n')


def test_csv_permissive_keeps_bad_rows_with_raw_line_in_corrupt_column(bad_csv: str) -> None:
    rows = read_files("csv", [bad_csv], CSV_SCHEMA, {"header": "true"}).to_pylist()
    assert rows == [
        {"id": 1, "name": "a", "_corrupt_record": None},
        {"id": None, "name": "b", "_corrupt_record": "x,b"},
        {"id": 3, "name": "c", "_corrupt_record": "3,c,extra"},
        {"id": 4, "name": "d", "_corrupt_record": None},
    ]


def test_csv_permissive_without_corrupt_column_gives_nulls(bad_csv: str) -> None:
    schema = StructType.fromDDL("id INT, name STRING")
    rows = read_files("csv", [bad_csv], schema, {"header": "true"}).to_pylist()
    assert [r["id"] for r in rows] == [1, None, 3, 4]


def test_csv_dropmalformed_drops_bad_rows(bad_csv: str) -> None:
    table = read_files("csv", [bad_csv], CSV_SCHEMA, {"header": "true", "mode": "DROPMALFORMED"})
    assert table.to_pylist() == [
        {"id": 1, "name": "a", "_corrupt_record": None},
        {"id": 4, "name": "d", "_corrupt_record": None},
    ]


def test_csv_failfast_names_file_and_line(bad_csv: str) -> None:
    with pytest.raises(MalformedRecordError) as info:
        read_files("csv", [bad_csv], CSV_SCHEMA, {"header": "true", "mode": "failfast"})
    assert bad_csv in str(info.value)
    assert "line 3" in str(info.value)
    assert "x,b" in str(info.value)


def test_json_permissive_keeps_bad_rows_with_raw_line(bad_json: str) -> None:
    rows = read_files("json", [bad_json], CSV_SCHEMA, {}).to_pylist()
    assert rows == [
        {"id": 1, "name": "a", "_corrupt_record": None},
        {"id": None, "name": None, "_corrupt_record": "not json"},
        {"id": None, "name": "b", "_corrupt_record": '{"id": "x", "name": "b"}'},
        {"id": 4, "name": None, "_corrupt_record": None},
    ]


def test_json_dropmalformed_drops_bad_rows(bad_json: str) -> None:
    rows = read_files("json", [bad_json], CSV_SCHEMA, {"mode": "DROPMALFORMED"}).to_pylist()
    assert rows == [
        {"id": 1, "name": "a", "_corrupt_record": None},
        {"id": 4, "name": None, "_corrupt_record": None},
    ]


def test_json_failfast_names_file_and_line(bad_json: str) -> None:
    with pytest.raises(MalformedRecordError, match="line 2") as info:
        read_files("json", [bad_json], CSV_SCHEMA, {"mode": "FAILFAST"})
    assert bad_json in str(info.value)


def test_json_custom_corrupt_column_name(bad_json: str) -> None:
    schema = StructType.fromDDL("id INT, bad STRING")
    rows = read_files("json", [bad_json], schema, {"columnNameOfCorruptRecord": "bad"})
    assert rows.column("bad").to_pylist() == [None, "not json", '{"id": "x", "name": "b"}', None]


def test_json_number_read_into_string_column_keeps_its_text(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{"s": 12}\n{"s": "x"}\n{"s": {"k": 1}}\n')
    rows = read_files("json", [path], StructType.fromDDL("s STRING"), {})
    assert rows.column("s").to_pylist() == ["12", "x", '{"k":1}']


def test_json_multiline_reads_a_top_level_array(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '[\n {"id": 1},\n {"id": 2}\n]\n')
    rows = read_files("json", [path], StructType.fromDDL("id LONG"), {"multiLine": "true"})
    assert rows.to_pylist() == [{"id": 1}, {"id": 2}]


def test_output_follows_schema_order_and_types_with_missing_columns_null(
        tmp_path: Path) -> None:
    path = write(tmp_path / "a.json",
                 '{"b": "x", "a": 1, "t": "2024-01-02T03:04:05Z", "extra": true}\n')
    schema = StructType.fromDDL("t TIMESTAMP, a LONG, missing DOUBLE, b STRING")
    table = read_files("json", [path], schema, {})
    assert table.schema == pa.schema([
        ("t", pa.timestamp("us", tz="UTC")), ("a", pa.int64()), ("missing", pa.float64()),
        ("b", pa.large_string()),
    ])
    assert table.to_pylist() == [{"t": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                                  "a": 1, "missing": None, "b": "x"}]


def test_csv_casts_to_schema_types(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv",
                 "1,2.5,true,2024-01-02,2024-01-02 03:04:05,\n"
                 "2,NaN,FALSE,,2024-01-02T03:04:05+01:00,z\n")
    schema = StructType.fromDDL(
        "a LONG, b DOUBLE, c BOOLEAN, d DATE, e TIMESTAMP, f STRING")
    table = read_files("csv", [path], schema, {})
    assert table.schema.field("e").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    assert rows[0] == {"a": 1, "b": 2.5, "c": True, "d": dt.date(2024, 1, 2),
                       "e": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "f": None}
    assert rows[1]["c"] is False and rows[1]["d"] is None and rows[1]["f"] == "z"
    assert rows[1]["e"] == dt.datetime(2024, 1, 2, 2, 4, 5, tzinfo=UTC)


def test_csv_without_header_maps_columns_by_position(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "id,name\n1,a\n")
    schema = StructType.fromDDL("x STRING, y STRING")
    assert read_files("csv", [path], schema, {}).to_pylist() == [
        {"x": "id", "y": "name"}, {"x": "1", "y": "a"}]


def test_csv_sep_quote_and_null_value_options(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "'a;b';NA;3\n")
    schema = StructType.fromDDL("s STRING, n STRING, i INT")
    options = {"sep": ";", "quote": "'", "nullValue": "NA"}
    assert read_files("csv", [path], schema, options).to_pylist() == [
        {"s": "a;b", "n": None, "i": 3}]


def test_text_gives_one_value_row_per_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "one\r\ntwo\n\nthree\n")
    table = read_files("text", [path], StructType.fromDDL("value STRING"), {})
    assert table.column("value").to_pylist() == ["one", "two", "", "three"]
    whole = read_files("text", [path], StructType.fromDDL("value STRING"), {"wholetext": "true"})
    assert whole.column("value").to_pylist() == ["one\r\ntwo\n\nthree\n"]


def test_parquet_selects_by_name_and_casts(tmp_path: Path) -> None:
    path = str(tmp_path / "a.parquet")
    pq.write_table(pa.table({
        "z": pa.array([1, 2], pa.int32()),
        "t": pa.array([0, 1_000_000_000], pa.timestamp("ns")),
        "s": pa.array(["a", "b"]),
    }), path)
    schema = StructType.fromDDL("s STRING, z LONG, t TIMESTAMP, gone INT")
    table = read_files("parquet", [path], schema, {})
    assert table.schema == schema.to_arrow_schema()
    assert table.to_pylist()[1] == {"s": "b", "z": 2, "gone": None,
                                    "t": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}


def test_parquet_schema_is_inferred_from_metadata(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": pa.array([1], pa.int64()), "b": ["x"]}),
                   str(tmp_path / "p.parquet"))
    assert infer_schema("parquet", [str(tmp_path)], {}) == StructType(
        [StructField("a", LongType()), StructField("b", StringType())])


def test_streaming_csv_and_json_need_a_schema_or_infer_schema(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "1\n")
    with pytest.raises(AnalysisException, match=r"Schema must be specified.*inferSchema"):
        infer_schema("csv", [str(tmp_path)], {})
    with pytest.raises(AnalysisException, match="Schema must be specified"):
        infer_schema("json", [str(tmp_path)], {})


def test_csv_infer_schema_from_header_and_values(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "id,score,name,big\n1,2.5,x,3000000000\n2,3,y,1\n")
    schema = infer_schema("csv", [str(tmp_path)], {"header": "true", "inferSchema": "true"})
    assert schema == StructType([
        StructField("id", IntegerType()), StructField("score", DoubleType()),
        StructField("name", StringType()), StructField("big", LongType()),
    ])


def test_json_infer_schema_sorts_fields_and_widens_conflicts(tmp_path: Path) -> None:
    write(tmp_path / "a.json", '{"b": 1, "a": "x", "t": "2024-01-01T00:00:00"}\n')
    write(tmp_path / "b.json", '{"b": "y", "c": 2.5}\n')
    schema = infer_schema("json", [str(tmp_path)], {"inferSchema": "true"})
    assert schema == StructType([
        StructField("a", StringType()), StructField("b", StringType()),
        StructField("c", DoubleType()), StructField("t", StringType()),
    ])


def test_hidden_files_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "a\n")
    write(tmp_path / "_SUCCESS", "")
    write(tmp_path / ".a.txt.crc", "junk\n")
    write(tmp_path / "_tmp" / "b.txt", "b\n")
    write(tmp_path / "sub" / "c.txt", "c\n")
    table = read_files("text", [str(tmp_path)], StructType.fromDDL("value STRING"), {})
    assert sorted(table.column("value").to_pylist()) == ["a", "c"]


def test_list_orders_by_modification_time_then_path(tmp_path: Path) -> None:
    for name, mtime in [("b", 100), ("a", 200), ("c", 100)]:
        p = write(tmp_path / name, "x")
        os.utime(p, (mtime, mtime))
    assert [os.path.basename(f.path) for f in list_data_files(str(tmp_path))] == ["b", "c", "a"]


def test_sink_output_folder_reads_only_manifest_files(tmp_path: Path) -> None:
    committed = write(tmp_path / "part-0.txt", "kept\n")
    write(tmp_path / "part-1.txt", "uncommitted\n")
    FileSinkManifest(str(tmp_path)).add_batch(0, [{"path": committed}])
    table = read_files("text", [str(tmp_path)], StructType.fromDDL("value STRING"), {})
    assert table.column("value").to_pylist() == ["kept"]


def test_scan_files_returns_a_lazy_frame(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "1,a\n2,b\n")
    frame = scan_files("csv", [path], StructType.fromDDL("id INT, name STRING"), {})
    assert isinstance(frame, pl.LazyFrame)
    assert frame.collect().to_dicts() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_unknown_mode_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "1\n")
    with pytest.raises(AnalysisException, match="PERMISSIVE, DROPMALFORMED or FAILFAST"):
        read_files("csv", [path], StructType.fromDDL("a INT"), {"mode": "lenient"})


def test_json_nested_types_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json",
                 '{"a": [1, 2], "s": {"x": "2024-01-01T00:00:00Z", "y": 1}, "m": {"k": 3}}\n')
    schema = StructType.fromDDL(
        "a ARRAY<LONG>, s STRUCT<x: TIMESTAMP, y: INT>, m MAP<STRING, LONG>")
    table = read_files("json", [path], schema, {})
    assert table.schema == schema.to_arrow_schema()
    assert table.to_pylist() == [{
        "a": [1, 2], "s": {"x": dt.datetime(2024, 1, 1, tzinfo=UTC), "y": 1},
        "m": [("k", 3)],
    }]

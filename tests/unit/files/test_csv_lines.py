"""The csv writer prints what Spark's prints (expected files are PySpark 4.3's output for
the same query, session zone UTC)."""

from __future__ import annotations

import glob
from pathlib import Path

import polars as pl
import pytest

from unbounded.files.csv_lines import CsvWriteOptions, csv_text
from unbounded.sql import SparkSession

QUERY = """select cast(1.50 as decimal(5,2)) dec, cast('NaN' as double) nan,
 cast('-Infinity' as double) inf, 1e20 big, cast(0.1 as float) f, 12345678.9d dd,
 true bo, 'a"b' q, 'x,y' c, '' e, cast(null as string) nul, 'line\\nbreak' nl,
 ' sp ' sp, 'back\\\\slash' bs"""
ROW = '1.50,NaN,-Infinity,1.0E20,0.1,1.23456789E7,true,"a\\"b","x,y",'


@pytest.mark.parametrize(("options", "text"), [
    ({}, ROW + '"",,"line\nbreak",sp,back\\slash\n'),
    ({"header": "true", "nullValue": "NULL", "emptyValue": "EMPTY"},
     "dec,nan,inf,big,f,dd,bo,q,c,e,nul,nl,sp,bs\n"
     + ROW + 'EMPTY,NULL,"line\nbreak",sp,back\\slash\n'),
])
def test_csv_files_print_values_quotes_and_spaces_as_spark(
        spark: SparkSession, tmp_path: Path, options: dict[str, str], text: str):
    spark.sql(QUERY).write.options(**options).csv(str(tmp_path / "out"))
    parts = sorted(glob.glob(str(tmp_path / "out" / "part-*")))
    assert "".join(Path(p).read_text(encoding="utf-8") for p in parts) == text


def test_quote_all_quotes_nulls_too_and_still_escapes():  # PySpark 4.3's output
    frame = pl.DataFrame({"a": ['x"y', "z"], "b": [1, None]})
    options = CsvWriteOptions.from_options({"quoteall": "true", "escapequotes": "false",
                                            "sep": ";", "header": "true"})
    assert csv_text(frame, options) == '"a";"b"\n"x\\"y";"1"\n"z";""\n'


def test_without_escape_quotes_a_value_with_a_quote_alone_is_not_quoted():
    frame = pl.DataFrame({"a": ['x"y', 'p"q,r']})
    options = CsvWriteOptions.from_options({"escapequotes": "false"})
    assert csv_text(frame, options) == 'x"y\n"p\\"q,r"\n'


def test_an_empty_frame_writes_only_its_header():
    frame = pl.DataFrame({"a": []}, schema={"a": pl.String})
    assert csv_text(frame, CsvWriteOptions.from_options({"header": "true"})) == "a\n"
    assert csv_text(frame, CsvWriteOptions.from_options({})) == ""

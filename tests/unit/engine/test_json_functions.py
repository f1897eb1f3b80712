"""from_json and to_json with Spark's options: every expected value below was read off
PySpark 4.3 (local[1], session zone UTC) for the same rows and options."""

from __future__ import annotations

import pytest

from unbounded.errors import AnalysisException, SparkRuntimeException
from unbounded.sql import functions as F

ROWS = ['{"t": "2026-03-08 09:05:07", "d": "2026-03-08"}',
        '{"t": "08/03/2026 09:05", "d": "08/03/2026"}',
        '{"t": "2026-03-08T09:05:07.123+01:00", "d": "2026-3-8"}',
        '{"t": 1700000000, "d": 20000}', "{bad", None, '{"t": "2026-03-08T09:05:07Z"}',
        '{"t": "2026-03-08"}', '{"t": "2026-03-08T09:05"}']
SCHEMA = "t timestamp, d date"


@pytest.fixture
def texts(spark):
    return spark.createDataFrame([(r,) for r in ROWS], "j string")


def _as_text(frame, *fields):
    """Each field of the parsed struct ``r`` as a string (UTC wall clock)."""
    cols = [F.col(f"r.{f}").cast("string") for f in fields]
    return [tuple(row) for row in frame.select(*cols).collect()]


def test_timestamps_and_dates_read_as_spark_by_default(texts):
    got = _as_text(texts.select(F.from_json("j", SCHEMA).alias("r")), "t", "d")
    assert got == [("2026-03-08 09:05:07", "2026-03-08"), (None, None),
                   ("2026-03-08 08:05:07.123", "2026-03-08"), ("2023-11-14 22:13:20", None),
                   (None, None), (None, None), ("2026-03-08 09:05:07", None),
                   ("2026-03-08 00:00:00", None), ("2026-03-08 09:05:00", None)]


def test_time_zone_option_reads_wall_clock_text_there(texts):
    got = _as_text(texts.select(F.from_json("j", SCHEMA, {"timeZone": "America/Los_Angeles"})
                                .alias("r")), "t")
    assert [g[0] for g in got] == [
        "2026-03-08 16:05:07", None, "2026-03-08 08:05:07.123", "2023-11-14 22:13:20", None,
        None, "2026-03-08 09:05:07", "2026-03-08 08:00:00", "2026-03-08 16:05:00"]


def test_timestamp_and_date_formats_replace_the_default_reading(texts):
    options = {"timestampFormat": "dd/MM/yyyy HH:mm", "dateFormat": "dd/MM/yyyy"}
    got = _as_text(texts.select(F.from_json("j", SCHEMA, options).alias("r")), "t", "d")
    assert got == [(None, None), ("2026-03-08 09:05:00", "2026-03-08"), (None, None),
                   ("2023-11-14 22:13:20", None)] + [(None, None)] * 5


def test_format_with_a_zone_option(texts):
    options = {"timestampFormat": "dd/MM/yyyy HH:mm", "timeZone": "+05:30"}
    got = _as_text(texts.select(F.from_json("j", SCHEMA, options).alias("r")), "t", "d")
    assert got[:4] == [(None, "2026-03-08"), ("2026-03-08 03:35:00", None),
                       (None, "2026-03-08"), ("2023-11-14 22:13:20", None)]


def test_corrupt_record_column_gets_the_text_of_a_record_that_did_not_convert(texts):
    parsed = texts.select(F.from_json("j", SCHEMA + ", _corrupt_record string").alias("r"))
    got = _as_text(parsed, "t", "_corrupt_record")
    assert got == [("2026-03-08 09:05:07", None), (None, ROWS[1]),
                   ("2026-03-08 08:05:07.123", None), ("2023-11-14 22:13:20", ROWS[3]),
                   (None, "{bad"), (None, None), ("2026-03-08 09:05:07", None),
                   ("2026-03-08 00:00:00", None), ("2026-03-08 09:05:00", None)]


def test_corrupt_record_column_named_by_the_option(texts):
    options = {"columnNameOfCorruptRecord": "bad"}
    parsed = texts.select(F.from_json("j", "t timestamp, bad string", options).alias("r"))
    assert [r[1] for r in _as_text(parsed, "t", "bad")] == [
        None, ROWS[1], None, None, "{bad", None, None, None, None]


def test_failfast_raises_on_the_first_malformed_record(texts):
    with pytest.raises(SparkRuntimeException, match="MALFORMED_RECORD_IN_PARSING"):
        texts.select(F.from_json("j", SCHEMA, {"mode": "FAILFAST"})).collect()


def test_dropmalformed_is_refused(texts):
    with pytest.raises(AnalysisException, match="PARSE_MODE_UNSUPPORTED"):
        texts.select(F.from_json("j", SCHEMA, {"mode": "DROPMALFORMED"})).collect()


SYNTAX = ["{a: 1, 'b': 'x', \"c\": 007, \"e\": NaN, \"f\": 'it''s'}",
          '{"a": 1, "b": "x", "c": 7, "e": 1.5}', '{"a": 01}', "{'b': 'y'}",
          '{"e": "NaN", "g": "Infinity"}', '{"e": Infinity, "g": -Infinity}',
          '{"b": "x\\y"}', '{"b": "ctl\tx"}']


@pytest.mark.parametrize(("options", "expected"), [
    ({}, [None, (1, "x", 7, 1.5, None), None, (None, "y", None, None, None),
          (None, None, None, "nan", "inf"), (None, None, None, "inf", "-inf"), None, None]),
    ({"allowSingleQuotes": "false"}, [None, (1, "x", 7, 1.5, None), None, None,
                                      (None, None, None, "nan", "inf"),
                                      (None, None, None, "inf", "-inf"), None, None]),
    ({"allowNumericLeadingZeros": "true", "allowUnquotedFieldNames": "true"},
     [None, (1, "x", 7, 1.5, None), (1, None, None, None, None),
      (None, "y", None, None, None), (None, None, None, "nan", "inf"),
      (None, None, None, "inf", "-inf"), None, None]),
    ({"allowNonNumericNumbers": "false"},
     [None, (1, "x", 7, 1.5, None), None, (None, "y", None, None, None), None, None, None,
      None]),
    ({"allowBackslashEscapingAnyCharacter": "true", "allowUnquotedControlChars": "true"},
     [None, (1, "x", 7, 1.5, None), None, (None, "y", None, None, None),
      (None, None, None, "nan", "inf"), (None, None, None, "inf", "-inf"),
      (None, "xy", None, None, None), (None, "ctl\tx", None, None, None)]),
])
def test_json_syntax_options(spark, options, expected):
    df = spark.createDataFrame([(r,) for r in SYNTAX], "j string")
    parsed = df.select(F.from_json("j", "a int, b string, c int, e double, g double",
                                   options).alias("r"))
    got = [tuple(_shown(v) for v in row[0]) for row in parsed.collect()]
    assert got == [e or (None,) * 5 for e in expected]


def _shown(value):
    """NaN and the infinities as text, so rows compare with ==."""
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return str(value)
    return value


def test_a_map_with_a_value_that_does_not_convert_is_null(spark):
    df = spark.createDataFrame([('{"x": "2026-01-02 03:04:05", "y": "bad"}',),
                                ('{"x": "2026-01-02 03:04:05"}',)], "j string")
    got = df.select(F.from_json("j", "map<string,timestamp>", {"timeZone": "Asia/Kolkata"})
                    .alias("m")).selectExpr("CAST(m['x'] AS STRING)").collect()
    assert [r[0] for r in got] == [None, "2026-01-01 21:34:05"]


def test_sql_from_json_takes_an_options_map(spark):
    row = spark.sql("""SELECT CAST(from_json('{"t": "08/03/2026 09:05"}', 't timestamp',
                       map('timestampFormat', 'dd/MM/yyyy HH:mm')).t AS STRING)""").collect()
    assert row[0][0] == "2026-03-08 09:05:00"


STRUCT = ("SELECT named_struct('t', TIMESTAMP'2026-03-08 09:05:07.5', 'd', DATE'2026-03-08', "
          "'n', CAST(NULL AS INT), 'm', map('k', TIMESTAMP'2026-03-08 09:05:07')) AS s")


@pytest.mark.parametrize(("options", "expected"), [
    (None, '{"t":"2026-03-08T09:05:07.500Z","d":"2026-03-08",'
           '"m":{"k":"2026-03-08T09:05:07.000Z"}}'),
    ({"timeZone": "America/Los_Angeles"},
     '{"t":"2026-03-08T01:05:07.500-08:00","d":"2026-03-08",'
     '"m":{"k":"2026-03-08T01:05:07.000-08:00"}}'),
    ({"timestampFormat": "dd/MM/yyyy HH:mm:ss", "dateFormat": "yyyy/MM/dd"},
     '{"t":"08/03/2026 09:05:07","d":"2026/03/08","m":{"k":"08/03/2026 09:05:07"}}'),
    ({"ignoreNullFields": "false"},
     '{"t":"2026-03-08T09:05:07.500Z","d":"2026-03-08","n":null,'
     '"m":{"k":"2026-03-08T09:05:07.000Z"}}'),
])
def test_to_json_options(spark, options, expected):
    assert spark.sql(STRUCT).select(F.to_json("s", options)).collect()[0][0] == expected


def test_to_json_formats_timestamps_inside_arrays(spark):
    df = spark.sql("SELECT array(TIMESTAMP'2026-03-08 09:05:07') AS a")
    assert df.select(F.to_json("a", {"timestampFormat": "yyyy"})).collect()[0][0] == '["2026"]'


def test_the_zone_is_the_sessions_when_the_dataframe_was_built(spark, texts):
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    built = texts.select(
        F.from_json("j", SCHEMA).alias("r"),
        F.to_json(F.struct(F.lit("2026-03-08 09:05:07").cast("timestamp").alias("t")))
        .alias("o"))
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    rows = built.select(F.col("r.t").cast("string"), "o").collect()
    assert rows[0][0] == "2026-03-08 16:05:07"
    assert rows[0][1] == '{"t":"2026-03-08T09:05:07.000-07:00"}'


def test_allow_comments_skips_block_and_line_comments(spark):
    row = spark.sql("""SELECT from_json('{"a": 1, /* c */ "b": "z" // x\n}', 'a int, b string',
                       map('allowComments', 'true')),
                       from_json('{"a": 1 # y\n}', 'a int', map('allowComments', 'true')),
                       from_json('/* h */ {"a": 2}', 'a int', map('allowComments', 'true')),
                       from_json('/* h */ {"a": 2}', 'a int')""").collect()[0]
    assert [tuple(v) for v in row] == [(1, "z"), (None,), (2,), (None,)]


def test_to_json_pretty_prints_as_jacksons_default_printer(spark):
    row = spark.sql("""SELECT to_json(named_struct('a', array(named_struct('b', 1),
                       named_struct('b', 2)), 'e', array(), 'o', named_struct('x', 1.5D,
                       'y', array(1, 2)), 'm', map('k', 1), 'z', named_struct('q',
                       CAST(NULL AS INT))), map('pretty', 'true')),
                       to_json(array(1, 2), map('pretty', 'true'))""").collect()[0]
    assert row[0] == ('{\n  "a" : [ {\n    "b" : 1\n  }, {\n    "b" : 2\n  } ],\n'
                      '  "e" : [ ],\n  "o" : {\n    "x" : 1.5,\n    "y" : [ 1, 2 ]\n  },\n'
                      '  "m" : {\n    "k" : 1\n  },\n  "z" : { }\n}')
    assert row[1] == "[ 1, 2 ]"


def test_to_json_writes_floating_point_numbers_as_java(spark):
    row = spark.sql("""SELECT to_json(named_struct('d', 1e10D, 'f', 1.5F, 'g', 0.1D,
                       'n', CAST('NaN' AS DOUBLE), 'i', CAST('-Infinity' AS DOUBLE),
                       'l', array(1e7D, 2.5D, NULL), 'e', 1e-5D, 'h', 100.0D,
                       'ff', CAST(1e10 AS FLOAT), 'm', map('k', 1e10D),
                       'a', array(named_struct('x', 1e8D)))),
                       to_json(array(1e10D, 3.0D)), to_json(map('a', array(1e-7D)))""")
    assert tuple(row.collect()[0]) == (
        '{"d":1.0E10,"f":1.5,"g":0.1,"n":"NaN","i":"-Infinity","l":[1.0E7,2.5,null],'
        '"e":1.0E-5,"h":100.0,"ff":1.0E10,"m":{"k":1.0E10},"a":[{"x":1.0E8}]}',
        "[1.0E10,3.0]", '{"a":[1.0E-7]}')

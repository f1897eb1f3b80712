"""CAST of strings to TIMESTAMP, DATE and TIMESTAMP_NTZ reads each row in its own shape,
as Spark's ``stringToTimestamp``/``stringToDate`` do. Expected values are PySpark 4.3's
(``unix_micros(CAST(t AS TIMESTAMP))`` with the session zone UTC and
America/Los_Angeles, ``CAST(t AS DATE)`` as days since the epoch, ``CAST(t AS
TIMESTAMP_NTZ)`` as microseconds), non-ANSI, recorded by a PySpark run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from unbounded.errors import DateTimeException
from unbounded.plan.timestamp_text import dates_of, timestamps_of
from unbounded.sql import SparkSession

FAR = object()  # Polars' zone rules stop before year 202603 (Java's repeat the last rule)

# text, instant with session zone UTC, instant with America/Los_Angeles, date, NTZ
CASES = [
    ('2026-03-08 10:00:00', 1772964000000000, 1772989200000000, 20520, 1772964000000000),
    ('2026-03-08T10:00:00.123+01:00', 1772960400123000, 1772960400123000, 20520, 1772964000123000),
    ('2026-03-08', 1772928000000000, 1772956800000000, 20520, 1772928000000000),
    ('2026-3-8 1:2:3', 1772931723000000, 1772960523000000, 20520, 1772931723000000),
    (' 2026-03-08 ', 1772928000000000, 1772956800000000, 20520, 1772928000000000),
    ('2026-03', 1772323200000000, 1772352000000000, 20513, 1772323200000000),
    ('2026', 1767225600000000, 1767254400000000, 20454, 1767225600000000),
    ('2026-03-08T10:00', 1772964000000000, 1772989200000000, 20520, 1772964000000000),
    ('2026-03-08 10', 1772964000000000, 1772989200000000, 20520, 1772964000000000),
    ('2026-03-08T', None, None, 20520, None),
    ('2026-03-08 10:00Z', None, None, 20520, None),
    ('2026-03-08T10:00+01:00', None, None, 20520, None),
    ('2026-03-08 10:00:00Z', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 UTC', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00UTC', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 GMT+1', 1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00GMT+01:00', 1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00+1:30', 1772958600000000, 1772958600000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00+01:3', 1772960220000000, 1772960220000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00+0130', 1772958600000000, 1772958600000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00-08', 1772992800000000, 1772992800000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00+8', 1772935200000000, 1772935200000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 Europe/Paris',
     1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 America/Los_Angeles',
     1772989200000000, 1772989200000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 europe/paris', None, None, 20520, None),
    ('2026-03-08 10:00:00 PST', 1772989200000000, 1772989200000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 z', None, None, 20520, None),
    ('2026-03-08 10:00:00 utc', None, None, 20520, None),
    ('2026-03-08 10:00:00.123456789', 1772964000123456, 1772989200123456, 20520, 1772964000123456),
    ('2026-03-08 10:00:00.1', 1772964000100000, 1772989200100000, 20520, 1772964000100000),
    ('2026-03-08 10:00:00.', 1772964000000000, 1772989200000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00.Z', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00.5.3', None, None, 20520, None),
    ('2026-03-08 10:00:00+19:00', None, None, 20520, None),
    ('2026-02-30', None, None, None, None),
    ('2026-02-29 10:00:00', None, None, None, None),
    ('2024-02-29', 1709164800000000, 1709193600000000, 19782, 1709164800000000),
    ('2026-13-01', None, None, None, None),
    ('2026-03-08 24:00:00', None, None, 20520, None),
    ('2026-03-08 23:60:00', None, None, 20520, None),
    ('2026-03-08 23:59:60', None, None, 20520, None),
    ('26-03-08', None, None, None, None),
    ('202603-08', 6331384224000000000, FAR, 73279910, 6331384224000000000),
    ('+2026-03-08', 1772928000000000, 1772956800000000, 20520, 1772928000000000),
    ('-0001-03-08', -62193052800000000, -62193024422000000, -719827, -62193052800000000),
    ('12026-03-08', 317342448000000000, 317342476800000000, 3672945, 317342448000000000),
    ('2026-03-08  10:00:00', None, None, 20520, None),
    ('2026-03-08 10:00:00 ', 1772964000000000, 1772989200000000, 20520, 1772964000000000),
    ('\t2026-03-08\n', 1772928000000000, 1772956800000000, 20520, 1772928000000000),
    ('2026-003-08', None, None, None, None),
    ('2026-03-008', None, None, None, None),
    ('2026-03-08 010:00:00', None, None, 20520, None),
    ('abc', None, None, None, None),
    ('', None, None, None, None),
    ('2026/03/08', None, None, None, None),
    ('2026-03-08 10:00:00 +01:00', 1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00.123 +01:00', 1772960400123000, 1772960400123000, 20520, 1772964000123000),
    ('2026-03-08T10:00:00Z', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2024-03-10 02:30:00 America/Los_Angeles',
     1710066600000000, 1710066600000000, 19792, 1710037800000000),
    ('2024-11-03 01:30:00 America/Los_Angeles',
     1730622600000000, 1730622600000000, 20030, 1730597400000000),
    ('2026-03-08 10:00:00 UTC+01:00', 1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 UT', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 GMT', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00+01:00:30', 1772960370000000, 1772960370000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 Z', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 1:2', 1772931720000000, 1772960520000000, 20520, 1772931720000000),
    ('2026-03-08 1:2:', None, None, 20520, None),
    ('2026-03-08 10:00:00 CST', 1772982000000000, 1772982000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 EST', 1772982000000000, 1772982000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00+01:00[Europe/Paris]', None, None, 20520, None),
    ('2026-03-08 10:00:00 +01', 1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 GMT0', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00 Etc/GMT+5', 1772982000000000, 1772982000000000, 20520, 1772964000000000),
    ('2026-03-08T10:00:00.999999999Z', 1772964000999999, 1772964000999999, 20520, 1772964000999999),
    ('2026-03-08 10:00:00 -00:00', 1772964000000000, 1772964000000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00+00:00:60', None, None, 20520, None),
    ('2026-3', 1772323200000000, 1772352000000000, 20513, 1772323200000000),
    ('2026-03-08 10:00:00 Europe/Paris ',
     1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('1970-01-01T00:00:00Z', 0, 0, 0, 0),
    ('2026-03-08junk', None, None, None, None),
    ('2026-03-08 junk', None, None, 20520, None),
    ('2026-03 junk', None, None, None, None),
    ('2026 junk', None, None, None, None),
    ('2026-03-08-01', None, None, None, None),
    ('10000-01-01', 253402300800000000, 253402329600000000, 2932897, 253402300800000000),
    ('2026-03-08X10:00', None, None, None, None),
    ('2026-03-08 10:00:00 +01:00 ', 1772960400000000, 1772960400000000, 20520, 1772964000000000),
    ('2026-03-08 10:00:00\x00', 1772964000000000, 1772989200000000, 20520, 1772964000000000),
]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    with SparkSession.builder.config("spark.sql.ansi.enabled", "false").create() as session:
        yield session  # stopped after the module: its UI port is freed


@pytest.fixture
def ansi_session() -> Iterator[Callable[[str], SparkSession]]:
    """Sessions in a given ANSI mode, each stopped after the test."""
    made: list[SparkSession] = []

    def make(ansi: str) -> SparkSession:
        made.append(SparkSession.builder.config("spark.sql.ansi.enabled", ansi).create())
        return made[-1]

    yield make
    for session in made:
        session.stop()


def _column(spark: SparkSession, expression: str, zone: str = "UTC") -> list[object]:
    spark.conf.set("spark.sql.session.timeZone", zone)
    frame = spark.createDataFrame([(i, c[0]) for i, c in enumerate(CASES)], "i INT, t STRING")
    table = frame.selectExpr(f"{expression} AS v").toArrow()
    return pl.from_arrow(table)["v"].to_physical().to_list()  # type: ignore[union-attr]


@pytest.mark.parametrize(("zone", "index"), [("UTC", 1), ("America/Los_Angeles", 2)])
def test_cast_to_timestamp_reads_each_row_in_its_own_shape(spark, zone, index):
    got = _column(spark, "unix_micros(CAST(t AS TIMESTAMP))", zone)
    differing = {c[0]: (g, c[index]) for c, g in zip(CASES, got, strict=True)
                 if c[index] is not FAR and g != c[index]}
    assert not differing


def test_cast_to_date_reads_each_row_in_its_own_shape(spark):
    got = _column(spark, "CAST(t AS DATE)")
    assert {c[0]: g for c, g in zip(CASES, got, strict=True) if g != c[3]} == {}


def test_cast_to_timestamp_ntz_drops_the_zone_and_needs_a_date(spark):
    got = _column(spark, "CAST(t AS TIMESTAMP_NTZ)")
    assert {c[0]: g for c, g in zip(CASES, got, strict=True) if g != c[4]} == {}


# A time alone is dated today in its zone: PySpark 4.3's time of day (session zone UTC,
# then America/Los_Angeles); a leading blank before T, a bare hour or a sign is NULL.
TIMES = [("10:00", "10:00:00", "10:00:00"), ("T10:00", "10:00:00", "10:00:00"),
         ("T10", "10:00:00", "10:00:00"), ("10:00:00Z", "10:00:00", "02:00:00"),
         ("T10:00:00+01:00", "09:00:00", "01:00:00"), (" T10:00", None, None),
         ("10", None, None), ("+10:00", None, None), ("10:00:00.5", "10:00:00.5", "10:00:00.5")]


@pytest.mark.parametrize(("zone", "index"), [("UTC", 1), ("America/Los_Angeles", 2)])
def test_a_time_alone_is_today_in_its_zone(zone, index):
    got = timestamps_of(pl.Series([t[0] for t in TIMES]), zone)
    local = got.dt.convert_time_zone(zone).to_list()
    assert [None if v is None else v.time().isoformat() for v in local] == \
        [None if t[index] is None else datetime.fromisoformat(f"2000-01-01 {t[index]}")
         .time().isoformat() for t in TIMES]
    assert [v.date() for v in local if v is not None] == \
        [_dated_today(text, zone) for text, *read in TIMES if read[0] is not None]


def _dated_today(text: str, zone: str) -> object:
    """The session-zone date of a time alone dated today in its own zone (Spark's
    ``LocalDate.now`` of the offset it names, else of the session zone): near
    midnight a time at +01:00 is already tomorrow's."""
    own = UTC if text.endswith("Z") else timezone(timedelta(hours=1)) \
        if text.endswith("+01:00") else ZoneInfo(zone)
    moment = datetime.fromisoformat(f"{datetime.now(own).date()}T{text.strip().lstrip('T')}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=own)) \
        .astimezone(ZoneInfo(zone)).date()


def test_a_batch_of_the_common_shape_reads_as_the_general_reader_does():
    texts = pl.Series(["2026-03-08 10:00:00", "2026-03-08T23:59:59.999999", None,
                       "2024-02-29 00:00:00.5", "2026-02-29 10:00:00"])
    common = timestamps_of(texts, "America/Los_Angeles")
    mixed = timestamps_of(pl.concat([texts, pl.Series(["2026-3-8"])]), "America/Los_Angeles")
    assert common.to_list() == mixed.head(5).to_list()
    assert common.cast(pl.Int64).to_list() == [
        1772989200000000, 1773039599999999, None, 1709193600500000, None]


def test_dates_of_a_batch_of_the_common_shape():
    texts = pl.Series(["2026-03-08", "2024-02-29", "2026-02-29", None])
    assert dates_of(texts).cast(pl.Int32).to_list() == [20520, 19782, None, None]


@pytest.mark.parametrize(("text", "target"), [
    ("2026-13-01", "TIMESTAMP"), ("2026-13-01", "DATE"), (" bad ", "TIMESTAMP"),
    (" bad ", "DATE"), ("2026-03-08 10:00:00 Mars/Olympus", "TIMESTAMP")])
def test_ansi_cast_of_an_invalid_text_raises_sparks_error(text, target, ansi_session):
    spark = ansi_session("true")
    frame = spark.createDataFrame([(text,)], "t STRING")
    with pytest.raises(DateTimeException) as error:
        frame.selectExpr(f"CAST(t AS {target})").collect()
    assert str(error.value) == (
        f"[CAST_INVALID_INPUT] The value '{text}' of the type \"STRING\" cannot be cast to "
        f'"{target}" because it is malformed. Correct the value as per the syntax, or change '
        "its target type. Use `try_cast` to tolerate malformed input and return NULL "
        "instead. SQLSTATE: 22018")


def test_ansi_cast_to_date_ignores_what_follows_the_date(ansi_session):
    spark = ansi_session("true")
    frame = spark.createDataFrame([("2026-03-08 10:00:00 Mars/Olympus",)], "t STRING")
    assert frame.selectExpr("CAST(CAST(t AS DATE) AS STRING) AS d").collect()[0]["d"] == \
        "2026-03-08"


@pytest.mark.parametrize("ansi", ["true", "false"])
def test_a_string_literal_compared_with_a_date_is_read_as_a_date(ansi, ansi_session):
    spark = ansi_session(ansi)
    frame = spark.sql("SELECT DATE'2026-03-08' AS d")
    row = frame.selectExpr("d = '2026-3-8' AS a", "d = ' 2026-03-08 10:00:00 ' AS b",
                           "d < '2026-03' AS c", "d > '2026' AS e").collect()[0]
    assert (row["a"], row["b"], row["c"], row["e"]) == (True, True, False, True)  # PySpark 4.3

"""The NumPy-built binary COPY stream is byte for byte what psycopg's write_row sends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from psycopg._copy_base import format_row_binary  # the formatter behind Copy.write_row
from psycopg.adapt import Transformer
from psycopg.pq import Format

from unbounded.errors import UnboundedError
from unbounded.sinks.postgres_copy import SIGNATURE, encode_binary_copy

UTC = dt.UTC


def _psycopg_stream(rows: pa.Table, oids: list[int]) -> bytes:
    tx = Transformer()
    tx.set_dumper_types(oids, Format.BINARY)
    out = bytearray(SIGNATURE)
    for row in zip(*(c.to_pylist() for c in rows.columns), strict=True):
        format_row_binary(row, tx, out)
    return bytes(out + b"\xff\xff")


def _column(values: list[Any], arrow: pa.DataType) -> pa.Table:
    return pa.table({"c": pa.array(values, arrow)})


FIXED = [
    ([1, None, -5, 2**40], pa.int64(), 20),
    ([1, None, -5, 7], pa.int64(), 23),  # a LONG column into an INTEGER table column
    ([1, 2, None, -3], pa.int32(), 20),
    ([3, None, -32768, 32767], pa.int16(), 21),
    ([1.5, None, float("inf"), -0.0], pa.float64(), 701),
    ([1.25, None, 2.0, -3.5], pa.float32(), 700),
    ([1.5, None, 2.0, 7.0], pa.float64(), 700),
    ([True, False, None, True], pa.bool_(), 16),
    ([dt.date(1999, 12, 31), dt.date(2026, 1, 1), None, dt.date(1, 1, 1)], pa.date32(),
     1082),
    ([dt.datetime(1970, 1, 1, tzinfo=UTC), None,
      dt.datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC),
      dt.datetime(1900, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"), 1184),
    ([dt.datetime(1970, 1, 1), None, dt.datetime(2026, 12, 7, 1, 2, 3, 456000),
      dt.datetime(1900, 1, 1)], pa.timestamp("ms"), 1114),
]


@pytest.mark.parametrize(("values", "arrow", "oid"), FIXED,
                         ids=[f"{a}->{o}" for _, a, o in FIXED])
def test_each_fixed_width_type_encodes_as_psycopg_does(values: list[Any],
                                                        arrow: pa.DataType, oid: int) -> None:
    rows = _column(values, arrow)
    got = encode_binary_copy(rows, [oid])
    assert got is not None
    assert bytes(got) == _psycopg_stream(rows, [oid])


def test_a_table_of_many_columns_and_chunks_encodes_as_psycopg_does() -> None:
    columns = {f"c{i}": pa.chunked_array([v[:2], v[2:]], a) for i, (v, a, _) in
               enumerate(FIXED)}
    rows = pa.table(columns)
    oids = [oid for _, _, oid in FIXED]
    got = encode_binary_copy(rows, oids)
    assert got is not None
    assert bytes(got) == _psycopg_stream(rows, oids)


def test_a_table_without_nulls_is_laid_out_as_packed_records_as_psycopg_does() -> None:
    rows = pa.table({f"c{i}": pa.array([x for x in v if x is not None], a)
                     for i, (v, a, _) in enumerate(FIXED)})
    assert rows.num_rows == 3 and not any(c.null_count for c in rows.columns)
    oids = [oid for _, _, oid in FIXED]
    got = encode_binary_copy(rows, oids)
    assert got is not None
    assert bytes(got) == _psycopg_stream(rows, oids)


def test_no_rows_is_the_signature_and_the_trailer() -> None:
    got = encode_binary_copy(pa.table({"c": pa.array([], pa.int64())}), [20])
    assert got is not None
    assert bytes(got) == SIGNATURE + b"\xff\xff"


@pytest.mark.parametrize(("rows", "oid"), [
    (_column(["a"], pa.string()), 25),  # text: psycopg's dumpers
    (_column([1], pa.int64()), 25),  # an integer into a text column
    (_column([1.5], pa.float64()), 20),  # a float into a bigint column
    (_column([dt.datetime(2026, 1, 1)], pa.timestamp("us")), 1184),  # naive into tz
])
def test_columns_it_cannot_lay_out_are_left_to_psycopg(rows: pa.Table, oid: int) -> None:
    assert encode_binary_copy(rows, [oid]) is None


def test_a_value_out_of_the_columns_range_fails_naming_the_column() -> None:
    # psycopg's int4 dumper would send the low 32 bits (0 here) without a word
    with pytest.raises(UnboundedError, match=r"Column 'id' holds a value that does not fit"):
        encode_binary_copy(pa.table({"id": pa.array([1, 2**40], pa.int64())}), [23])


def test_nanoseconds_are_truncated_to_postgresqls_microseconds() -> None:
    rows = _column([1_000_001_999, None], pa.timestamp("ns", tz="UTC"))
    micros = _column([1_000_001, None], pa.timestamp("us", tz="UTC"))
    got = encode_binary_copy(rows, [1184])
    assert got is not None
    assert bytes(got) == _psycopg_stream(micros, [1184])

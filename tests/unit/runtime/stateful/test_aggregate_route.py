"""The aggregation's routing of partial rows to state partitions: its shortcuts for no
row and one row put every row where the general partitioning pass puts it (a row in the
wrong partition would be merged with the wrong stored state)."""

from __future__ import annotations

from types import SimpleNamespace

import polars as pl
import pytest

from unbounded.runtime.stateful.aggregate import (
    _PARTITION,
    MapSideAggregation,
    StreamingAggregation,
    _route,
)
from unbounded.runtime.stateful.base import partition_ids, split_partitions

ROWS = pl.DataFrame({"w": [0, 5_000_000, None, 10_000_000, 15_000_000],
                     "g": ["a", None, "c", "d", "e"], "n": [1, 2, 3, 4, 5]})


def _general(rows: pl.DataFrame, n: int) -> list[list[tuple[object, ...]]]:
    return [p.rows() for p in split_partitions(rows, partition_ids(rows, ["w", "g"], n), n)]


@pytest.mark.parametrize("index", range(ROWS.height))
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_one_row_goes_where_the_partitioning_pass_puts_it(index: int, n: int) -> None:
    row = ROWS.slice(index, 1)
    routed = _route(row, ["w", "g"], n)
    assert [p.rows() for p in routed] == _general(row, n)
    assert all(p.schema == ROWS.schema for p in routed)


def test_no_rows_give_every_partition_an_empty_frame_of_the_schema() -> None:
    routed = _route(ROWS.clear(), ["w", "g"], 3)
    assert [(p.height, p.schema) for p in routed] == [(0, ROWS.schema)] * 3


def test_several_rows_take_the_partitioning_pass() -> None:
    routed = _route(ROWS, ["w", "g"], 2)
    assert [p.rows() for p in routed] == _general(ROWS, 2)
    assert sorted((r for p in routed for r in p.rows()), key=repr) == \
        sorted(ROWS.rows(), key=repr)


def test_a_tasks_rows_come_in_partition_order_keeping_their_order_within_each() -> None:
    """The map side hands the driver one run per partition (``_route`` then slices),
    each partition's rows in their original order (first/last depend on it)."""
    side = MapSideAggregation((), ("w",), (), (), (), None, num_partitions=3)
    tagged = pl.DataFrame({"w": [9, 8, 7, 6, 5, 4, 3], _PARTITION: [2, 0, 2, 1, 0, 2, 0]})
    out = side._grouped_by_partition(tagged)
    assert out.rows() == [(8, 0), (5, 0), (3, 0), (6, 1), (9, 2), (7, 2), (4, 2)]
    routed = _route(out, ["w"], 3)
    assert [p.get_column("w").to_list() for p in routed] == [[8, 5, 3], [6], [9, 7, 4]]


def test_tagged_rows_lose_their_tag_without_a_polars_query_and_leave_the_input_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tagged = ROWS.with_columns(pl.Series(_PARTITION, [0, 1, 1, 0, 1], dtype=pl.UInt64))
    one = tagged.slice(1, 1)

    def no_query(*args: object, **kwargs: object) -> None:
        raise AssertionError("DataFrame.drop runs a lazy query")

    monkeypatch.setattr(pl.DataFrame, "drop", no_query)
    routed = _route(one, ["w", "g"], 2)
    assert [p.rows() for p in routed] == [[], [(5_000_000, None, 2)]]
    assert all(p.schema == ROWS.schema for p in routed)
    assert one.columns == [*ROWS.columns, _PARTITION]  # the caller's frame is unchanged


def test_no_emitted_rows_finalize_to_the_output_schema_without_a_query() -> None:
    schema = pl.Schema({"window": pl.Struct({"start": pl.Datetime("us", "UTC"),
                                             "end": pl.Datetime("us", "UTC")}),
                        "count": pl.Int64, "sum": pl.Float64})
    # no aggregates: nothing is compiled; the empty output frame is built once, up front
    operator = SimpleNamespace(output_schema=schema, _no_rows=pl.DataFrame(schema=schema))
    out = StreamingAggregation._finalize(operator, pl.DataFrame({"w": [], "n": []}))
    assert (out.height, out.schema) == (0, schema)
    out.insert_column(0, pl.Series("x", [], dtype=pl.Int8))  # a copy each batch
    assert operator._no_rows.schema == schema

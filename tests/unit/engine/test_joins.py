"""engine/joins.py on frames computed elsewhere (as a streaming join operator calls it),
the Join and SubqueryAlias plan nodes, and the output columns that carry qualifiers."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from unbounded.engine.context import CompileContext, OutputColumn
from unbounded.engine.joins import (
    EquiKey,
    JoinCondition,
    join_frames,
    join_inputs,
    split_join_condition,
)
from unbounded.engine.plans import compile_output, plan_columns, plan_schema
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import BinaryOp, ColumnRef, Literal
from unbounded.plan.logical import (
    BoundRelation,
    Filter,
    Join,
    JoinType,
    SourceSpec,
    StreamingRelation,
    SubqueryAlias,
    replace_node,
    streaming_relations,
    walk_plan,
)
from unbounded.plan.types import LongType, StringType, StructField, StructType

LEFT = StructType([StructField("k", LongType()), StructField("v", StringType())])
RIGHT = StructType([StructField("k", LongType()), StructField("w", StringType())])


def _eq(a: str, b: str) -> BinaryOp:
    return BinaryOp("eq", ColumnRef(a), ColumnRef(b))


def _node(how: JoinType, condition=None, using=()) -> Join:
    left = SubqueryAlias(BoundRelation(LEFT), "l")
    right = SubqueryAlias(BoundRelation(RIGHT), "r")
    return Join(left, right, how, condition, using)


def _frames():
    left = pl.LazyFrame({"k": [1, 2, None], "v": ["a", "b", "c"]})
    right = pl.LazyFrame({"k": [1, 1, None, 4], "w": ["x", "y", "z", "q"]})
    return left, right


def _sorted(frame: pl.LazyFrame) -> list[tuple]:
    return sorted(frame.collect().rows(), key=lambda t: tuple((v is None, str(v)) for v in t))


def test_join_frames_joins_rows_computed_elsewhere_with_a_residual():
    node = _node(JoinType.LEFT_OUTER,
                 BinaryOp("and", _eq("l.k", "r.k"), BinaryOp("ne", ColumnRef("r.w"),
                                                              Literal("y"))))
    ctx = CompileContext(pl.Schema(), 0)
    out = join_frames(node, *_frames(), ctx)
    assert out.collect_schema().names() == ["k", "v", "k#1", "w"]
    assert _sorted(out) == [(1, "a", 1, "x"), (2, "b", None, None), (None, "c", None, None)]
    assert [c.label for c in ctx.plan_columns[node]] == \
        ["`l`.`k`", "`l`.`v`", "`r`.`k`", "`r`.`w`"]


def test_join_frames_using_full_outer_coalesces_the_key():
    ctx = CompileContext(pl.Schema(), 0)
    out = join_frames(_node(JoinType.FULL_OUTER, using=("k",)), *_frames(), ctx)
    assert out.collect_schema().names() == ["k", "v", "w"]
    assert _sorted(out) == [(1, "a", "x"), (1, "a", "y"), (2, "b", None), (4, None, "q"),
                            (None, "c", None), (None, None, "z")]


def test_join_frames_null_safe_key_matches_nulls():
    node = _node(JoinType.INNER, BinaryOp("eq_null_safe", ColumnRef("l.k"), ColumnRef("r.k")))
    out = join_frames(node, *_frames(), CompileContext(pl.Schema(), 0))
    assert _sorted(out) == [(1, "a", 1, "x"), (1, "a", 1, "y"), (None, "c", None, "z")]


def test_mixed_null_safe_and_plain_keys_keep_plain_keys_strict():
    left = pl.LazyFrame({"k": [None, None], "v": [None, "b"]})
    right = pl.LazyFrame({"k": [None, None], "w": [None, "y"]})
    cond = BinaryOp("and", BinaryOp("eq_null_safe", ColumnRef("l.k"), ColumnRef("r.k")),
                    _eq("l.v", "r.w"))
    assert join_frames(_node(JoinType.INNER, cond), left, right,
                       CompileContext(pl.Schema(), 0)).collect().height == 0
    only_safe = BinaryOp("eq_null_safe", ColumnRef("l.k"), ColumnRef("r.k"))
    assert join_frames(_node(JoinType.INNER, only_safe), left, right,
                       CompileContext(pl.Schema(), 0)).collect().height == 4


def test_split_join_condition_orients_keys_and_keeps_the_rest():
    node = _node(JoinType.INNER)
    columns = plan_columns(node.left), plan_columns(node.right)
    inputs = join_inputs(*columns, pl.Schema({"k": pl.Int64, "v": pl.String}),
                         pl.Schema({"k": pl.Int64, "w": pl.String}),
                         CompileContext(pl.Schema(), 0))
    range_part = BinaryOp("gt", ColumnRef("r.w"), ColumnRef("l.v"))
    one_sided = BinaryOp("eq", ColumnRef("l.v"), Literal("a"))
    cond = BinaryOp("and", BinaryOp("and", _eq("r.k", "l.k"), range_part), one_sided)
    split = split_join_condition(cond, inputs)
    assert split == JoinCondition(
        (EquiKey(ColumnRef("l.k"), ColumnRef("r.k")),),
        BinaryOp("and", range_part, one_sided))
    assert split_join_condition(None, inputs) == JoinCondition((), None)
    assert inputs.right_renames == {"k": "k#1"}


def test_split_join_condition_rejects_an_ambiguous_reference():
    node = _node(JoinType.INNER)
    inputs = join_inputs(plan_columns(node.left), plan_columns(node.right),
                         pl.Schema({"k": pl.Int64, "v": pl.String}),
                         pl.Schema({"k": pl.Int64, "w": pl.String}),
                         CompileContext(pl.Schema(), 0))
    with pytest.raises(AnalysisException) as err:
        split_join_condition(_eq("k", "r.k"), inputs)
    assert err.value.error_class == "AMBIGUOUS_REFERENCE"
    assert "[`l`.`k`, `r`.`k`]" in str(err.value)


@pytest.mark.parametrize(("spelling", "expected"), [
    ("inner", JoinType.INNER), ("CROSS", JoinType.CROSS), ("outer", JoinType.FULL_OUTER),
    ("full", JoinType.FULL_OUTER), ("fullouter", JoinType.FULL_OUTER),
    ("full_outer", JoinType.FULL_OUTER), ("left", JoinType.LEFT_OUTER),
    ("leftouter", JoinType.LEFT_OUTER), ("left_outer", JoinType.LEFT_OUTER),
    ("right", JoinType.RIGHT_OUTER), ("rightouter", JoinType.RIGHT_OUTER),
    ("Right_Outer", JoinType.RIGHT_OUTER), ("semi", JoinType.LEFT_SEMI),
    ("leftsemi", JoinType.LEFT_SEMI), ("left_semi", JoinType.LEFT_SEMI),
    ("anti", JoinType.LEFT_ANTI), ("leftanti", JoinType.LEFT_ANTI),
    ("left_anti", JoinType.LEFT_ANTI), ("l_e_f_t", JoinType.LEFT_OUTER),
])
def test_join_type_parses_every_spark_spelling(spelling, expected):
    assert JoinType.parse(spelling) is expected


def test_join_node_is_a_two_child_plan_the_plan_helpers_walk():
    left = StreamingRelation(SourceSpec("rate"), LEFT)
    right = StreamingRelation(SourceSpec("memory"), RIGHT)
    node = Filter(Join(left, SubqueryAlias(right, "r"), JoinType.INNER, _eq("k", "r.k")),
                  Literal(True))
    assert streaming_relations(node) == [left, right]
    assert [type(n).__name__ for n in walk_plan(node)] == \
        ["Filter", "Join", "StreamingRelation", "SubqueryAlias", "StreamingRelation"]
    bound = BoundRelation(RIGHT)
    replaced = replace_node(node, right, bound)
    assert streaming_relations(replaced) == [left]
    assert replaced.plan_id == node.plan_id
    copy = pickle.loads(pickle.dumps(replaced))
    assert copy.child.join_type is JoinType.INNER and copy.child.plan_id == replaced.child.plan_id


def test_join_node_validates_its_arguments():
    with pytest.raises(ValueError, match="either a condition or USING"):
        Join(BoundRelation(LEFT), BoundRelation(RIGHT), JoinType.INNER, _eq("k", "k"), ("k",))
    with pytest.raises(ValueError, match="alias"):
        SubqueryAlias(BoundRelation(LEFT), "")


def test_output_columns_keep_internal_names_out_of_the_schema():
    node = _node(JoinType.INNER, _eq("l.k", "r.k"))
    assert plan_schema(node).names == ["k", "v", "k", "w"]
    assert [c.physical for c in plan_columns(node)] == ["k", "v", "k#1", "w"]
    frame, columns = compile_output(node, {}, CompileContext(pl.Schema(), 0))
    assert frame.collect_schema().names() == [c.physical for c in columns]


def test_context_resolves_qualifier_before_struct_field():
    schema = pl.Schema({"s": pl.Struct({"f": pl.Int64}), "f": pl.Int64})
    columns = (OutputColumn("s", "s"), OutputColumn("f", "f", frozenset({"s"})))
    ctx = CompileContext(schema, 0, columns=columns)
    assert ctx.resolve_column(ColumnRef("s.f")) == (columns[1], [])
    plain = CompileContext(schema, 0)
    assert plain.resolve_column(ColumnRef("s.f")) == (plain.columns[0], ["f"])

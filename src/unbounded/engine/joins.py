"""Joins of two compiled Polars frames, with Spark's semantics for every join type.

``join_frames`` joins the outputs of a ``Join`` node's two children; it does not compile
them, so a streaming operator can call it on rows it buffered in state (a stream-stream
join) or on a micro-batch and a static frame. ``split_join_condition`` cuts a condition
into hash-join keys and a residual, which that operator also needs to key its state.

Semantics (Spark's): equality conjuncts between a left-only and a right-only expression
are hash keys; ``=`` never matches NULL keys, ``<=>`` does. Everything else is the
residual, part of the match condition: an outer join keeps a row whose every candidate
fails the residual, padded with NULLs, and a semi join keeps a left row once. See
docs/design/joins.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import reduce

import polars as pl

from unbounded.engine.coercion import binary_operand_types
from unbounded.engine.context import CompileContext, OutputColumn, unique_name
from unbounded.engine.expressions import compile_expr, implicit_cast
from unbounded.engine.struct_comparison import aligned_structs
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import BinaryOp, ColumnRef, Expression, walk
from unbounded.plan.logical import Join, JoinType, LogicalPlan

__all__ = [
    "EquiKey",
    "JoinCondition",
    "JoinInputs",
    "conjuncts",
    "equi_key_exprs",
    "join_frames",
    "join_inputs",
    "split_join_condition",
]

_ROW_LEFT = "__unbounded_join_row_l"
_ROW_RIGHT = "__unbounded_join_row_r"


@dataclass(frozen=True)
class EquiKey:
    """One hash-join key: ``left`` reads only left columns, ``right`` only right ones."""

    left: Expression
    right: Expression
    null_safe: bool = False


@dataclass(frozen=True)
class JoinCondition:
    """A join condition cut into hash keys and the rest (``None``: nothing else)."""

    keys: tuple[EquiKey, ...]
    residual: Expression | None


@dataclass(frozen=True)
class JoinInputs:
    """The two sides' columns, and a context over both that resolves the condition.

    Invariant: right physical names never equal a left one (right columns that would
    clash are renamed by ``join_inputs``; ``right_renames`` maps old to new names).
    """

    left: tuple[OutputColumn, ...]
    right: tuple[OutputColumn, ...]
    right_renames: dict[str, str]
    ctx: CompileContext

    def side_of(self, column: OutputColumn) -> str:
        return "left" if column in self.left else "right"


def join_inputs(
    left_columns: Sequence[OutputColumn], right_columns: Sequence[OutputColumn],
    left_schema: pl.Schema, right_schema: pl.Schema, ctx: CompileContext,
) -> JoinInputs:
    """Both sides' columns with clashing right physical names renamed, and a context
    over their concatenation."""
    taken = {c.physical for c in left_columns}
    renames: dict[str, str] = {}
    right: list[OutputColumn] = []
    for c in right_columns:
        physical = unique_name(c.physical, taken)
        taken.add(physical)
        if physical != c.physical:
            renames[c.physical] = physical
        right.append(replace(c, physical=physical))
    schema = pl.Schema([*left_schema.items(),
                        *((renames.get(n, n), t) for n, t in right_schema.items())])
    both = ctx.with_schema(schema, (*left_columns, *right))
    return JoinInputs(tuple(left_columns), tuple(right), renames, both)


def split_join_condition(condition: Expression | None, inputs: JoinInputs) -> JoinCondition:
    """``condition``'s AND-ed parts: each ``l = r`` / ``l <=> r`` whose sides read only
    left and only right columns (either order) becomes a key, the rest the residual.

    Raises AnalysisException when a reference does not resolve or is ambiguous.
    """
    keys: list[EquiKey] = []
    rest: list[Expression] = []
    for part in conjuncts(condition):
        key = _as_key(part, inputs)
        if key is None:
            rest.append(part)
        else:
            keys.append(key)
    residual = reduce(lambda a, b: BinaryOp("and", a, b), rest) if rest else None
    return JoinCondition(tuple(keys), residual)


def conjuncts(condition: Expression | None) -> list[Expression]:
    """The AND-ed parts of ``condition``, left to right (none for no condition)."""
    if condition is None:
        return []
    if isinstance(condition, BinaryOp) and condition.op == "and":
        return [*conjuncts(condition.left), *conjuncts(condition.right)]
    return [condition]


def _as_key(part: Expression, inputs: JoinInputs) -> EquiKey | None:
    if not (isinstance(part, BinaryOp) and part.op in ("eq", "eq_null_safe")):
        return None
    null_safe = part.op == "eq_null_safe"
    sides = (_sides(part.left, inputs), _sides(part.right, inputs))
    if sides == ({"left"}, {"right"}):
        return EquiKey(part.left, part.right, null_safe)
    if sides == ({"right"}, {"left"}):
        return EquiKey(part.right, part.left, null_safe)
    return None


def _sides(expr: Expression, inputs: JoinInputs) -> set[str]:
    refs = [n for n in walk(expr) if isinstance(n, ColumnRef)]
    return {inputs.side_of(inputs.ctx.resolve_column(r)[0]) for r in refs}


def join_frames(
    node: Join, left: pl.LazyFrame, right: pl.LazyFrame, ctx: CompileContext, *,
    left_columns: Sequence[OutputColumn] | None = None,
    right_columns: Sequence[OutputColumn] | None = None,
) -> pl.LazyFrame:
    """``node``'s join of ``left`` and ``right``, the already-computed outputs of
    ``node.left`` and ``node.right``; records the output columns in ``ctx.plan_columns``.

    The sides' columns default to those ``ctx`` recorded while compiling the children,
    else to ``plan_columns`` of each child (what ``compile_plan`` of it outputs).
    """
    lcols = tuple(left_columns or _columns_of(node.left, ctx))
    rcols = tuple(right_columns or _columns_of(node.right, ctx))
    inputs = join_inputs(lcols, rcols, left.collect_schema(), right.collect_schema(), ctx)
    right = right.rename(inputs.right_renames)
    if node.using:
        out, columns = _using_join(node, left, right, inputs)
    else:
        out, columns = _condition_join(node, left, right, inputs)
    ctx.plan_columns[node] = columns
    return out


def _columns_of(plan: LogicalPlan, ctx: CompileContext) -> tuple[OutputColumn, ...]:
    from unbounded.engine.plans import plan_columns  # plans imports this module

    known = ctx.plan_columns.get(plan)
    return known if known is not None else plan_columns(plan)


def _condition_join(
    node: Join, left: pl.LazyFrame, right: pl.LazyFrame, inputs: JoinInputs
) -> tuple[pl.LazyFrame, tuple[OutputColumn, ...]]:
    condition = split_join_condition(node.condition, inputs)
    columns = (*inputs.left, *inputs.right) if node.join_type.keeps_right_columns \
        else inputs.left
    out = _match(node.join_type, left, right, condition, inputs)
    return out.select([c.physical for c in columns]), columns


# ---- matching rows ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Keys:
    """Key columns added to both frames, and how NULL keys compare."""

    left: list[str]
    right: list[str]
    nulls_equal: bool
    not_null: list[pl.Expr]  # ``=`` keys when ``<=>`` keys force nulls_equal


def _match(
    how: JoinType, left: pl.LazyFrame, right: pl.LazyFrame, condition: JoinCondition,
    inputs: JoinInputs,
) -> pl.LazyFrame:
    left, right, keys = _add_keys(left, right, condition.keys, inputs)
    residual = [compile_expr(condition.residual, inputs.ctx)] \
        if condition.residual is not None else []
    predicates = [*residual, *keys.not_null]
    if predicates or not keys.left:
        out = _match_with_predicate(how, left, right, keys, predicates)
    else:
        out = _native_join(how, left, right, keys)
    return out.drop([*keys.left, *keys.right], strict=False)


def _add_keys(
    left: pl.LazyFrame, right: pl.LazyFrame, keys: tuple[EquiKey, ...], inputs: JoinInputs
) -> tuple[pl.LazyFrame, pl.LazyFrame, _Keys]:
    """Each key evaluated into a column of its side, both cast to their common type."""
    taken = set(inputs.ctx.schema.names())
    lnames: list[str] = []
    rnames: list[str] = []
    for i, key in enumerate(keys):
        lexpr, rexpr = _coerced(key, inputs.ctx)
        lnames.append(unique_name(f"__unbounded_key_l{i}", taken))
        rnames.append(unique_name(f"__unbounded_key_r{i}", taken))
        left = left.with_columns(lexpr.alias(lnames[-1]))
        right = right.with_columns(rexpr.alias(rnames[-1]))
    null_safe = [k.null_safe for k in keys]
    nulls_equal = any(null_safe)
    not_null = [pl.col(n).is_not_null() for n, safe in zip(lnames, null_safe, strict=True)
                if nulls_equal and not safe]
    return left, right, _Keys(lnames, rnames, nulls_equal, not_null)


def _coerced(key: EquiKey, ctx: CompileContext) -> tuple[pl.Expr, pl.Expr]:
    lexpr, rexpr = compile_expr(key.left, ctx), compile_expr(key.right, ctx)
    ltype, rtype = ctx.dtype_of(lexpr), ctx.dtype_of(rexpr)
    casts = binary_operand_types("eq", ltype, rtype, ansi=ctx.ansi)  # as `=` does
    if casts != (None, None):  # a string meets a timestamp (in ctx's zone) or a number
        lexpr, rexpr = implicit_cast(lexpr, casts[0], ctx), implicit_cast(rexpr, casts[1], ctx)
        ltype, rtype = ctx.dtype_of(lexpr), ctx.dtype_of(rexpr)
    if isinstance(ltype, pl.Struct) and isinstance(rtype, pl.Struct):  # by field position
        shown = f"({key.left.display_name()} = {key.right.display_name()})"
        return aligned_structs(shown, (lexpr, rexpr), (ltype, rtype))[0]
    if ltype == rtype:
        return lexpr, rexpr
    try:
        common = pl.concat([pl.DataFrame(schema={"k": ltype}), pl.DataFrame(schema={"k": rtype})],
                           how="vertical_relaxed").schema["k"]
    except pl.exceptions.PolarsError:
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES] Cannot join on "
            f"{key.left.display_name()} = {key.right.display_name()}: the types {ltype} and "
            f"{rtype} differ. Cast one side.", error_class="DATATYPE_MISMATCH") from None
    return lexpr.cast(common), rexpr.cast(common)


_NATIVE: dict[JoinType, str] = {
    JoinType.INNER: "inner", JoinType.CROSS: "inner", JoinType.LEFT_OUTER: "left",
    JoinType.RIGHT_OUTER: "right", JoinType.FULL_OUTER: "full",
    JoinType.LEFT_SEMI: "semi", JoinType.LEFT_ANTI: "anti",
}


def _native_join(how: JoinType, left: pl.LazyFrame, right: pl.LazyFrame,
                 keys: _Keys) -> pl.LazyFrame:
    """A hash join on the key columns alone: Polars' join types are Spark's here."""
    return left.join(right, left_on=keys.left, right_on=keys.right, how=_NATIVE[how],  # type: ignore[arg-type]
                     nulls_equal=keys.nulls_equal, coalesce=False)


def _match_with_predicate(
    how: JoinType, left: pl.LazyFrame, right: pl.LazyFrame, keys: _Keys,
    predicates: list[pl.Expr],
) -> pl.LazyFrame:
    """Pairs that match on the keys and every predicate; the unmatched rows each join
    type keeps are then found by row number, so an outer join pads a row whose every
    candidate failed the predicate, and a semi join keeps a left row once. An inner
    join keeps only the pairs, so it numbers no rows (numbering stops Polars from
    streaming the inputs into the join)."""
    numbered = how not in (JoinType.INNER, JoinType.CROSS)
    if numbered:
        left = left.with_row_index(_ROW_LEFT)
        right = right.with_row_index(_ROW_RIGHT)
    if keys.left:
        pairs = left.join(right, left_on=keys.left, right_on=keys.right, how="inner",
                          nulls_equal=keys.nulls_equal, coalesce=False)
    else:
        pairs = left.join(right, how="cross")
    if predicates:
        pairs = pairs.filter(pl.all_horizontal(predicates).fill_null(False))
    if not numbered:
        return pairs
    return _keep_unmatched(how, left, right, pairs).drop([_ROW_LEFT, _ROW_RIGHT], strict=False)


def _keep_unmatched(how: JoinType, left: pl.LazyFrame, right: pl.LazyFrame,
                    pairs: pl.LazyFrame) -> pl.LazyFrame:
    matched_left = pairs.select(_ROW_LEFT).unique()
    matched_right = pairs.select(_ROW_RIGHT).unique()
    if how is JoinType.LEFT_SEMI:
        return left.join(matched_left, on=_ROW_LEFT, how="semi")
    if how is JoinType.LEFT_ANTI:
        return left.join(matched_left, on=_ROW_LEFT, how="anti")
    parts = [pairs]
    if how in (JoinType.LEFT_OUTER, JoinType.FULL_OUTER):
        parts.append(left.join(matched_left, on=_ROW_LEFT, how="anti"))
    if how in (JoinType.RIGHT_OUTER, JoinType.FULL_OUTER):
        parts.append(right.join(matched_right, on=_ROW_RIGHT, how="anti"))
    return pl.concat(parts, how="diagonal") if len(parts) > 1 else pairs


# ---- USING joins -----------------------------------------------------------------------
def _using_join(
    node: Join, left: pl.LazyFrame, right: pl.LazyFrame, inputs: JoinInputs
) -> tuple[pl.LazyFrame, tuple[OutputColumn, ...]]:
    """``df.join(other, ["k"])``: keys first (coalesced for a full join, the right one for
    a right join), then the other left columns, then the other right columns."""
    pairs = [(_using_side(name, inputs.left, "left"), _using_side(name, inputs.right, "right"))
             for name in node.using]
    keys = tuple(EquiKey(ColumnRef(name, ordinal=inputs.left.index(lc)),
                         ColumnRef(name, ordinal=len(inputs.left) + inputs.right.index(rc)))
                 for name, (lc, rc) in zip(node.using, pairs, strict=True))
    out = _match(node.join_type, left, right, JoinCondition(keys, None), inputs)
    key_exprs, key_columns = zip(*(_using_key(node.join_type, lc, rc) for lc, rc in pairs),
                                 strict=True)
    used = {c for pair in pairs for c in pair}
    rest = [c for c in inputs.left if c not in used]
    if node.join_type.keeps_right_columns:
        rest += [c for c in inputs.right if c not in used]
    selected = [*key_exprs, *(pl.col(c.physical) for c in rest)]
    return out.select(selected), (*key_columns, *rest)


def _using_side(name: str, columns: tuple[OutputColumn, ...], side: str) -> OutputColumn:
    found = [c for c in columns if c.name.lower() == name.lower()]
    if len(found) == 1:
        return found[0]
    shown = ", ".join(c.label for c in columns)
    if not found:
        raise AnalysisException(
            f"[UNRESOLVED_USING_COLUMN_FOR_JOIN] USING column `{name}` cannot be resolved on "
            f"the {side} side of the join. The {side}-side columns: [{shown}].",
            error_class="UNRESOLVED_USING_COLUMN_FOR_JOIN")
    raise AnalysisException(
        f"[AMBIGUOUS_REFERENCE] Reference `{name}` is ambiguous, could be: "
        f"[{', '.join(c.label for c in found)}].", error_class="AMBIGUOUS_REFERENCE")


def _using_key(how: JoinType, lc: OutputColumn,
               rc: OutputColumn) -> tuple[pl.Expr, OutputColumn]:
    """The one output column of a USING key. After an inner join both sides' values are
    equal, so both sides' qualifiers name it; otherwise only the side it comes from."""
    if how is JoinType.RIGHT_OUTER:
        return pl.col(rc.physical), rc
    if how is JoinType.FULL_OUTER:
        merged = pl.coalesce(pl.col(lc.physical), pl.col(rc.physical)).alias(lc.physical)
        return merged, OutputColumn(lc.physical, lc.name)
    if how in (JoinType.INNER, JoinType.CROSS):
        both = replace(lc, qualifiers=lc.qualifiers | rc.qualifiers,
                       lineage=lc.lineage | rc.lineage)
        return pl.col(lc.physical), both
    return pl.col(lc.physical), lc


def equi_key_exprs(keys: Sequence[EquiKey], ctx: CompileContext
                   ) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """Each key compiled over ``ctx`` (a ``JoinInputs.ctx``) for the left and the right
    side, both cast to their common type, so equal keys hash equal on both sides (a
    stream-stream join routes each side's rows to state partitions by them)."""
    pairs = [_coerced(key, ctx) for key in keys]
    return [p[0] for p in pairs], [p[1] for p in pairs]

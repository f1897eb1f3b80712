"""``spark.sql(query)``: SELECT statements translated into logical plans.

sqlglot parses the statement (``expr_parser.parse_statement``, the dialect expression
strings use) and every expression in it becomes an expression node through
``expr_parser.convert_node``; this module only maps the statement's structure to plan
nodes, as Spark's analyzer would:

* ``FROM``/``JOIN`` -> views, tables, CTEs and subqueries under ``SubqueryAlias``
  (``t.col`` then names their columns), ``Join`` for every join type;
* ``WHERE`` -> ``Filter`` (``x IN (SELECT ...)`` -> a left semi join);
  ``UNION [ALL]``, ``EXCEPT``, ``INTERSECT``; NATURAL joins;
* ``GROUP BY``/``HAVING`` and aggregates in the select list -> ``Aggregate`` over the
  grouping keys and every aggregate call found, then a ``Project`` that computes the
  select list over them (so ``count(*) + 1`` and ``HAVING sum(x) > 2`` work);
* ``ORDER BY`` (select aliases and ordinals too), ``DISTINCT``, ``LIMIT``.

The result is streaming when any input is. Other statements fail naming the construct.

Example:
    >>> from unbounded.sql import SparkSession
    >>> spark = SparkSession.builder.create()
    >>> spark.createDataFrame([("a", 1), ("a", 2), ("b", 5)], "k STRING, v INT") \\
    ...     .createOrReplaceTempView("t")
    >>> spark.sql("SELECT k, sum(v) AS s FROM t GROUP BY k ORDER BY s DESC").collect()
    [Row(k='b', s=5), Row(k='a', s=3)]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from unbounded.engine.plans import plan_columns
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    BinaryOp,
    ColumnRef,
    Expression,
    FunctionCall,
    Literal,
    PythonUDF,
    SortOrder,
    Star,
    walk,
)
from unbounded.plan.logical import (
    Aggregate,
    DataRelation,
    Deduplicate,
    Filter,
    Join,
    JoinType,
    Limit,
    LogicalPlan,
    Project,
    Sort,
    SubqueryAlias,
    Union,
)
from unbounded.plan.window import WindowExpression
from unbounded.sql.expr_parser import convert_node, parse_statement
from unbounded.sql.expr_rewrite import transform
from unbounded.sql.grouping_ops import GroupingSets, grouping_sets_plan, uses_grouping
from unbounded.sql.sql_grouping import group_by_sets
from unbounded.sql.sql_params import QueryFormatter, bind_parameters
from unbounded.sql.sql_pivot import pivot_clause

if TYPE_CHECKING:
    from unbounded.plan.types import DataType
    from unbounded.session import SparkSession
    from unbounded.sql.dataframe import DataFrame

__all__ = ["run_sql", "translate_node", "translate_query", "unsupported_sql"]

_PATH_FORMATS = frozenset({"parquet", "json", "csv", "orc", "avro", "text", "delta"})
# Select clauses this translator handles; any other filled clause is rejected by name.
_SELECT_ARGS = frozenset({"expressions", "from_", "from", "joins", "where", "group",
                          "having", "order", "limit", "distinct", "with_", "with", "hint",
                          "kind"})
_SET_OP_ARGS = frozenset({"this", "expression", "distinct", "order", "limit", "with_",
                          "with", "by_name", "side", "kind"})
_CLAUSE_NAMES = {"offset": "OFFSET", "qualify": "QUALIFY", "windows": "WINDOW",
                 "laterals": "LATERAL VIEW", "cluster": "CLUSTER BY",
                 "distribute": "DISTRIBUTE BY", "sort": "SORT BY", "pivots": "PIVOT",
                 "into": "SELECT INTO", "locks": "FOR UPDATE", "sample": "TABLESAMPLE",
                 "connect": "CONNECT BY", "prewhere": "PREWHERE", "match": "MATCH_RECOGNIZE"}


def run_sql(session: SparkSession, query: str, args: dict[str, Any] | list[Any] | None = None,
            kwargs: dict[str, Any] | None = None) -> DataFrame:
    """The DataFrame of one SQL query over the session's views and tables; a command
    (CREATE, DROP, INSERT, SHOW...) runs at once (``unbounded.sql.sql_commands``)."""
    from unbounded.sql.dataframe import DataFrame
    from unbounded.sql.sql_commands import run_command

    formatter = QueryFormatter(session)
    try:
        text = formatter.format(query, **kwargs) if kwargs else query
        show = _SHOW.match(text)
        # sqlglot parses SHOW only as an opaque command (and logs a warning doing so).
        tree = exp.Command(this="SHOW", expression=exp.Literal.string(text[show.end():])) \
            if show else bind_parameters(parse_statement(text), args)
        if not isinstance(tree, (exp.Query, exp.Values)):
            return run_command(session, tree, text)
        return DataFrame(translate_node(session, tree, text), session)
    finally:
        formatter.drop_views()


def translate_query(session: SparkSession, query: str) -> LogicalPlan:
    """The plan of one SELECT query (a command fails naming itself)."""
    tree = parse_statement(query)
    if not isinstance(tree, (exp.Query, exp.Values)):
        raise _unsupported(f"The statement {_head(tree)}", query)
    return translate_node(session, tree, query)


def translate_node(session: SparkSession, node: exp.Expr, sql: str) -> LogicalPlan:
    """The plan of a parsed query (or VALUES list) inside the statement ``sql``."""
    return _Translator(session, sql).query(node, {})


def _head(node: exp.Expr) -> str:
    text = node.sql(dialect="spark")
    return (text[:60] + "...") if len(text) > 60 else text


def unsupported_sql(what: str, query: str) -> AnalysisException:
    return AnalysisException(
        f"[UNSUPPORTED_SQL] {what} is not supported by spark.sql (in {query!r}). "
        "spark.sql runs SELECT queries (WHERE, GROUP BY, HAVING, JOIN, UNION, CTEs, "
        "subqueries in FROM, ORDER BY, LIMIT) and the commands CREATE/DROP TEMP VIEW, "
        "CREATE/DROP TABLE, INSERT, CREATE DATABASE, USE, SHOW TABLES; use the DataFrame "
        "API or spark.catalog for the rest.", error_class="UNSUPPORTED_SQL")


_unsupported = unsupported_sql
_SHOW = re.compile(r"^\s*SHOW\b", re.IGNORECASE)


Scope = dict[str, LogicalPlan]


class _Translator:
    """One statement's translation: the session resolves names, ``sql`` is quoted in
    errors."""

    def __init__(self, session: SparkSession, sql: str) -> None:
        self.session = session
        self.sql = sql
        self.subqueries = 0

    def expr(self, node: exp.Expr) -> Expression:
        return convert_node(node, self.sql)

    # ---- queries -------------------------------------------------------------------------
    def query(self, node: exp.Expr, scope: Scope) -> LogicalPlan:
        scope = self.with_ctes(node, scope)
        if isinstance(node, exp.Select):
            return self.select(node, scope)
        if isinstance(node, exp.SetOperation):
            return self.set_operation(node, scope)
        if isinstance(node, exp.Subquery):
            return self.finish(self.query(node.this, scope), node, output_only=True)
        if isinstance(node, exp.Values):
            return self.values(node)
        raise _unsupported(f"The query {_head(node)}", self.sql)

    def values(self, node: exp.Values) -> LogicalPlan:
        """``VALUES (1, 'a'), (2, 'b') [AS t(x, y)]``: literal rows, columns col1...."""
        rows = [[self.expr(v) for v in (t.expressions if isinstance(t, exp.Tuple) else [t])]
                for t in node.expressions]
        if any(not isinstance(v, Literal) for row in rows for v in row) or \
                len({len(r) for r in rows}) != 1:
            raise _unsupported("VALUES rows other than literals of equal length", self.sql)
        alias = node.args.get("alias")
        names = [c.name for c in alias.columns] if alias is not None and alias.columns else \
            [f"col{i + 1}" for i in range(len(rows[0]))]
        columns = {n: _literal_column([r[i] for r in rows]) for i, n in enumerate(names)}
        plan: LogicalPlan = DataRelation(pa.table(columns))
        return SubqueryAlias(plan, alias.name) if alias is not None and alias.name else plan

    def with_ctes(self, node: exp.Expr, scope: Scope) -> Scope:
        ctes = node.args.get("with_") or node.args.get("with")
        if ctes is None:
            return scope
        if ctes.args.get("recursive"):
            raise _unsupported("WITH RECURSIVE", self.sql)
        inner = dict(scope)
        for cte in ctes.expressions:
            inner[cte.alias.lower()] = SubqueryAlias(self.query(cte.this, inner), cte.alias)
        return inner

    def set_operation(self, node: exp.SetOperation, scope: Scope) -> LogicalPlan:
        self.check_args(node, _SET_OP_ARGS)
        if node.args.get("by_name") or node.args.get("side") or node.args.get("kind"):
            raise _unsupported(f"The set operation {_head(node)}", self.sql)
        left, right = self.query(node.this, scope), self.query(node.expression, scope)
        distinct = bool(node.args.get("distinct"))
        if isinstance(node, exp.Union):
            plan: LogicalPlan = Union((left, right))
            plan = Deduplicate(plan, None) if distinct else plan
        else:
            if not distinct:
                raise _unsupported(f"{node.key.upper()} ALL", self.sql)
            plan = self.match_rows(left, right, isinstance(node, exp.Intersect))
        return self.finish(plan, node, output_only=True)

    def match_rows(self, left: LogicalPlan, right: LogicalPlan, intersect: bool
                   ) -> LogicalPlan:
        """INTERSECT or EXCEPT (distinct) through the DataFrame methods, which widen both
        inputs to the types their UNION would have, in the session's ANSI mode."""
        from unbounded.sql.dataframe import DataFrame

        _same_rows(left, right)  # the SQL error for inputs of other widths
        lhs, rhs = DataFrame(left, self.session), DataFrame(right, self.session)
        return (lhs.intersect(rhs) if intersect else lhs.subtract(rhs))._plan

    def finish(self, plan: LogicalPlan, node: exp.Expr, *, output_only: bool) -> LogicalPlan:
        """ORDER BY and LIMIT over a query's output (set operations, parenthesised)."""
        order = node.args.get("order")
        if order is not None and output_only:
            plan = Sort(plan, tuple(self.sort_order(o, lambda e: e) for o in order.expressions))
        return self.limit(plan, node)

    def limit(self, plan: LogicalPlan, node: exp.Expr) -> LogicalPlan:
        limit = node.args.get("limit")
        if limit is None:
            return plan
        value = self.expr(limit.expression)
        if not (isinstance(value, Literal) and isinstance(value.value, int)) or value.value < 0:
            raise AnalysisException(
                f"[INVALID_LIMIT_LIKE_EXPRESSION] LIMIT needs a non-negative integer "
                f"literal, got {limit.expression.sql(dialect='spark')}.",
                error_class="INVALID_LIMIT_LIKE_EXPRESSION")
        return Limit(plan, value.value)

    def check_args(self, node: exp.Expr, allowed: frozenset[str]) -> None:
        for key, value in node.args.items():
            if key not in allowed and value not in (None, [], False):
                name = _CLAUSE_NAMES.get(key, key.upper())
                raise _unsupported(f"The clause {name}", self.sql)

    # ---- SELECT --------------------------------------------------------------------------
    def select(self, node: exp.Select, scope: Scope) -> LogicalPlan:
        self.check_args(node, _SELECT_ARGS)
        if node.args.get("kind"):
            raise _unsupported(f"SELECT AS {node.args['kind']}", self.sql)
        plan = self.from_clause(node, scope)
        where = node.args.get("where")
        if where is not None:
            plan = self.where(plan, where.this, scope)
        items = [self.expr(e) for e in node.expressions]
        group = node.args.get("group")
        having = node.args.get("having")
        if group is not None or having is not None or any(_is_aggregated(i) for i in items):
            plan = _Aggregation(self, plan, items).build(group, having, node.args.get("order"))
        else:
            plan = self.projection(plan, items, node)
        if node.args.get("distinct") is not None:
            if node.args["distinct"].args.get("on"):
                raise _unsupported("DISTINCT ON", self.sql)
            plan = Deduplicate(plan, None)
            plan = self.output_sort(plan, items, node.args.get("order"))
        return self.limit(plan, node)

    def where(self, plan: LogicalPlan, condition: exp.Expr, scope: Scope) -> LogicalPlan:
        """A filter; ``x IN (SELECT ...)`` conjuncts become left semi joins, as Spark's
        optimizer rewrites them."""
        conjuncts = list(condition.flatten()) if isinstance(condition, exp.And) \
            else [condition]
        plain = [c for c in conjuncts if not (isinstance(c, exp.In) and c.args.get("query"))]
        for conjunct in conjuncts:
            if isinstance(conjunct, exp.In) and conjunct.args.get("query"):
                plan = self.in_subquery(plan, conjunct, scope)
        if not plain:
            return plan
        converted = [self.expr(c) for c in plain]
        combined = converted[0]
        for more in converted[1:]:
            combined = BinaryOp("and", combined, more)
        return Filter(plan, combined)

    def in_subquery(self, plan: LogicalPlan, node: exp.In, scope: Scope) -> LogicalPlan:
        query = node.args["query"]
        sub = self.query(query.this if isinstance(query, exp.Subquery) else query, scope)
        columns = plan_columns(sub)
        if len(columns) != 1:
            raise AnalysisException(
                "[DATATYPE_MISMATCH.IN_SUBQUERY_LENGTH_MISMATCH] The number of columns in the "
                f"left hand side of an IN subquery (1) does not match the number of columns "
                f"in the output of the subquery ({len(columns)}).",
                error_class="DATATYPE_MISMATCH.IN_SUBQUERY_LENGTH_MISMATCH")
        name = f"__in_subquery_{self.subqueries}"
        self.subqueries += 1
        values = Project(sub, (Alias(ColumnRef(_quote(columns[0].name)), name),))
        condition = BinaryOp("eq", self.expr(node.this), ColumnRef(name))
        return Join(plan, values, JoinType.LEFT_SEMI, condition)

    def projection(self, plan: LogicalPlan, items: list[Expression],
                   node: exp.Select) -> LogicalPlan:
        """Rows in ORDER BY order (sorted below the projection, so ORDER BY may name
        input columns the select list drops), then the select list. An ORDER BY on a
        window function's result sorts the projection's output instead."""
        order = node.args.get("order")
        if order is None or node.args.get("distinct") is not None:
            return Project(plan, tuple(items))
        aliases = _output_map(items)
        below = tuple(self.sort_order(o, lambda e: _substitute(e, aliases, items))
                      for o in order.expressions)
        if any(isinstance(n, WindowExpression) for o in below for n in walk(o.child)):
            return self.output_sort(Project(plan, tuple(items)), items, order)
        return Project(Sort(plan, below), tuple(items))

    def output_sort(self, plan: LogicalPlan, items: list[Expression],
                    order: exp.Order | None) -> LogicalPlan:
        """ORDER BY over the output (above DISTINCT or window functions): it names output
        columns (aliases, ordinals, items)."""
        if order is None:
            return plan
        names = [i.display_name() for i in items]

        def to_output(e: Expression) -> Expression:
            position = _ordinal(e, len(items))
            if position is not None:
                return ColumnRef(_quote(names[position]))
            bare = [i.child if isinstance(i, Alias) else i for i in items]
            return ColumnRef(_quote(names[bare.index(e)])) if e in bare else e

        return Sort(plan, tuple(self.sort_order(o, to_output) for o in order.expressions))

    def sort_order(self, node: exp.Expr, rewrite: Callable[[Expression], Expression],
                   ) -> SortOrder:
        if not isinstance(node, exp.Ordered):
            return SortOrder(rewrite(self.expr(node)), True)
        ascending = not node.args.get("desc")
        nulls_first = node.args.get("nulls_first")
        return SortOrder(rewrite(self.expr(node.this)), ascending,
                         bool(nulls_first) if nulls_first is not None else None)

    # ---- FROM ----------------------------------------------------------------------------
    def from_clause(self, node: exp.Select, scope: Scope) -> LogicalPlan:
        source = node.args.get("from_") or node.args.get("from")
        if source is None:
            if node.args.get("joins"):
                raise _unsupported("JOIN without FROM", self.sql)
            return DataRelation(pa.table({"__one_row": [0]}))
        plan = self.relation(source.this, scope)
        for join in node.args.get("joins") or []:
            plan = self.join(plan, join, scope)
        return plan

    def relation(self, node: exp.Expr, scope: Scope) -> LogicalPlan:
        if isinstance(node, exp.Table):
            return self.table(node, scope)
        if isinstance(node, exp.Values):
            return self.values(node)
        if isinstance(node, exp.Subquery):
            plan = self.query(node.this, scope)
            plan = self.finish(plan, node, output_only=True)
            if node.args.get("pivots"):
                return self.pivots(plan, node)
            return SubqueryAlias(plan, node.alias) if node.alias else plan
        raise _unsupported(f"The relation {_head(node)}", self.sql)

    def table(self, node: exp.Table, scope: Scope) -> LogicalPlan:
        for key in ("joins", "laterals", "sample", "version", "changes"):
            if node.args.get(key):
                raise _unsupported(f"{_CLAUSE_NAMES.get(key, key.upper())} on a table",
                                   self.sql)
        parts = [p.name for p in node.parts]
        plan = self.named_relation(parts, scope)
        alias = node.alias or parts[-1]
        if node.args.get("pivots"):
            return self.pivots(SubqueryAlias(plan, alias), node)
        return SubqueryAlias(plan, alias)

    def pivots(self, plan: LogicalPlan, node: exp.Expr) -> LogicalPlan:
        """PIVOT/UNPIVOT clauses of a FROM item (``sql_pivot``), then its alias."""
        for clause in node.args["pivots"]:
            plan = pivot_clause(self.session, plan, clause, self.expr)
            alias = clause.args.get("alias")
            if alias is not None and alias.name:
                plan = SubqueryAlias(plan, alias.name)
        return plan

    def named_relation(self, parts: list[str], scope: Scope) -> LogicalPlan:
        if len(parts) == 1 and parts[0].lower() in scope:
            return scope[parts[0].lower()]
        if len(parts) == 2 and parts[0].lower() in _PATH_FORMATS and "/" in parts[1]:
            return self.session.read.format(parts[0].lower()).load(parts[1])._plan
        name = ".".join("`" + p.replace("`", "``") + "`" for p in parts)
        return self.session.catalog._resolve(name)._plan

    def join(self, left: LogicalPlan, node: exp.Join, scope: Scope) -> LogicalPlan:
        method = str(node.args.get("method") or "").upper()
        if method not in ("", "NATURAL"):
            raise _unsupported(f"{method} JOIN", self.sql)
        right = self.relation(node.this, scope)
        join_type = _join_type(node.args.get("side") or "", node.args.get("kind") or "")
        using = node.args.get("using")
        names = tuple(u.name for u in using) if using else ()
        if method == "NATURAL":
            names = _common_names(left, right)
            if not names and join_type is JoinType.INNER:
                return Join(left, right, JoinType.CROSS)
        if names:
            return Join(left, right, join_type, using=names)
        on = node.args.get("on")
        if on is None and join_type is JoinType.INNER:
            join_type = JoinType.CROSS
        return Join(left, right, join_type, self.expr(on) if on is not None else None)


def _literal_column(values: list[Expression]) -> pa.Array:
    """A VALUES column: integer literals are INT when they fit, as Spark types them."""
    python = [v.value for v in values if isinstance(v, Literal)]
    if all(isinstance(x, int) and not isinstance(x, bool) and -(2**31) <= x < 2**31
           for x in python if x is not None) and any(x is not None for x in python):
        return pa.array(python, pa.int32())
    return pa.array(python)


def _join_type(side: str, kind: str) -> JoinType:
    side, kind = side.upper(), kind.upper()
    if kind in ("SEMI", "ANTI"):
        return JoinType.LEFT_SEMI if kind == "SEMI" else JoinType.LEFT_ANTI
    if kind == "CROSS":
        return JoinType.CROSS
    by_side = {"LEFT": JoinType.LEFT_OUTER, "RIGHT": JoinType.RIGHT_OUTER,
               "FULL": JoinType.FULL_OUTER}
    return by_side.get(side, JoinType.INNER)


def _common_names(left: LogicalPlan, right: LogicalPlan) -> tuple[str, ...]:
    """NATURAL JOIN's keys: the left's column names the right also has, in left order."""
    right_names = {c.name.lower() for c in plan_columns(right)}
    return tuple(c.name for c in plan_columns(left) if c.name.lower() in right_names)


def _same_rows(left: LogicalPlan, right: LogicalPlan) -> Expression | None:
    """EXCEPT/INTERSECT match whole rows, by position, NULLs equal (Spark's rule)."""
    lcols, rcols = plan_columns(left), plan_columns(right)
    if len(lcols) != len(rcols):
        raise AnalysisException(
            f"[NUM_COLUMNS_MISMATCH] EXCEPT/INTERSECT can only be performed on inputs with "
            f"the same number of columns, but the inputs have {len(lcols)} and "
            f"{len(rcols)}.", error_class="NUM_COLUMNS_MISMATCH")
    condition: Expression | None = None
    for lc, rc in zip(lcols, rcols, strict=True):
        pair = BinaryOp("eq_null_safe", ColumnRef(_quote(lc.name), plan_id=left.plan_id),
                        ColumnRef(_quote(rc.name), plan_id=right.plan_id))
        condition = pair if condition is None else BinaryOp("and", condition, pair)
    return condition


# ---- expressions over the select list ----------------------------------------------------
def _quote(name: str) -> str:
    return f"`{name}`" if "." in name else name


def _is_aggregate_node(e: Expression) -> bool:
    return isinstance(e, AggregateCall) or (isinstance(e, PythonUDF) and e.is_aggregate)


def _is_aggregated(e: Expression) -> bool:
    """Whether ``e`` aggregates rows (an aggregate inside ``OVER (...)`` does not)."""
    if isinstance(e, WindowExpression):
        return False
    return _is_aggregate_node(e) or any(_is_aggregated(c) for c in e.children())


def _alias_map(items: list[Expression]) -> dict[str, Expression]:
    return {i.name.lower(): i.child for i in items if isinstance(i, Alias)}


def _output_map(items: list[Expression]) -> dict[str, Expression]:
    """ORDER BY resolves against the select list's output names first (``window.start``
    is ``start``), explicit aliases winning, as Spark's analyzer does."""
    named = {i.display_name().lower(): i for i in items if not isinstance(i, (Alias, Star))}
    return {**named, **_alias_map(items)}


def _ordinal(e: Expression, count: int) -> int | None:
    """``ORDER BY 2`` / ``GROUP BY 1``: the 0-based select item an integer names."""
    if isinstance(e, Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
        if not 1 <= e.value <= count:
            raise AnalysisException(
                f"[ORDER_BY_POS_OUT_OF_RANGE] The position {e.value} is not in the select "
                f"list (1 to {count}).", error_class="ORDER_BY_POS_OUT_OF_RANGE")
        return e.value - 1
    return None


def _substitute(e: Expression, aliases: dict[str, Expression],
                items: list[Expression]) -> Expression:
    """A select alias or ordinal named in ORDER BY/GROUP BY, as the item's expression."""
    position = _ordinal(e, len(items))
    if position is not None:
        item = items[position]
        return item.child if isinstance(item, Alias) else item
    if isinstance(e, ColumnRef) and e.plan_id is None and e.name.lower() in aliases:
        return aliases[e.name.lower()]
    return e


class _Aggregation:
    """GROUP BY: keys and aggregate calls into one ``Aggregate``, the rest above it.

    Keys are named as Spark names them (a column's name, ``window`` for a time window);
    aggregate calls get internal names, and the select list, HAVING and ORDER BY are
    rewritten to read those columns.
    """

    def __init__(self, translator: _Translator, child: LogicalPlan,
                 items: list[Expression]) -> None:
        self.t = translator
        self.child = child
        self.items = items
        self.keys: list[tuple[Expression, str]] = []
        self.aggs: list[Expression] = []
        self.sets: tuple[tuple[int, ...], ...] | None = None  # ROLLUP, CUBE, GROUPING SETS

    def build(self, group: exp.Group | None, having: exp.Having | None,
              order: exp.Order | None) -> LogicalPlan:
        if any(isinstance(i, Star) for i in self.items):
            raise AnalysisException(
                "[MISSING_AGGREGATION] SELECT * cannot be used with GROUP BY or aggregates; "
                "list the grouping columns and aggregates.", error_class="MISSING_AGGREGATION")
        for i, key in enumerate(self.group_keys(group)):
            self.keys.append((key, self.key_name(key, i)))
        outputs = [Alias(self.rewrite(i), i.display_name()) for i in self.items]
        aliases = _output_map(self.items)
        condition = None
        if having is not None:
            named = transform(self.t.expr(having.this), self.alias_of)
            condition = self.rewrite(named)
        orders = [self.t.sort_order(o, lambda e: self.rewrite(_substitute(e, aliases,
                                                                          self.items)))
                  for o in (order.expressions if order is not None else [])]
        plan = self.aggregate()
        if condition is not None:
            plan = Filter(plan, condition)
        if any(isinstance(n, WindowExpression) for o in orders for n in walk(o.child)):
            return self.t.output_sort(Project(plan, tuple(outputs)), self.items, order)
        if orders:
            plan = Sort(plan, tuple(orders))
        return Project(plan, tuple(outputs))

    def aggregate(self) -> LogicalPlan:
        """One ``Aggregate``, or, for ROLLUP/CUBE/GROUPING SETS, the plan the DataFrame
        methods ``rollup``/``cube`` build (``grouping_ops``)."""
        keys = tuple(Alias(k, n) for k, n in self.keys)
        aggs = tuple(Alias(a, f"_agg{j}") for j, a in enumerate(self.aggs))
        if self.sets is None:
            if any(uses_grouping(a) for a in self.aggs):
                raise AnalysisException(
                    "[UNSUPPORTED_GROUPING_EXPRESSION] grouping()/grouping_id() can only be "
                    "used with GroupingSets/Cube/Rollup.",
                    error_class="UNSUPPORTED_GROUPING_EXPRESSION")
            return Aggregate(self.child, keys, aggs)
        types = tuple(_expression_types(self.t.session, self.child, [k for k, _ in self.keys]))
        return grouping_sets_plan(self.child, keys, GroupingSets(self.sets, types), aggs)

    def group_keys(self, group: exp.Group | None) -> list[Expression]:
        if group is None:
            return []
        if group.args.get("all"):
            return [i.child if isinstance(i, Alias) else i
                    for i in self.items if not _is_aggregated(i)]
        inputs = {c.name.lower() for c in plan_columns(self.child)}
        aliases = {k: v for k, v in _alias_map(self.items).items() if k not in inputs}
        keys, self.sets = group_by_sets(
            group, lambda g: _substitute(self.t.expr(g), aliases, self.items))
        return keys

    def alias_of(self, e: Expression) -> Expression | None:
        """HAVING may name a select alias (``HAVING total > 2``) that no input has."""
        if not isinstance(e, ColumnRef) or e.plan_id is not None:
            return None
        inputs = {c.name.lower() for c in plan_columns(self.child)}
        name = e.name.lower()
        return _alias_map(self.items).get(name) if name not in inputs else None

    def key_name(self, key: Expression, index: int) -> str:
        if isinstance(key, FunctionCall) and key.name in ("window", "session_window"):
            name = key.name
        elif isinstance(key, ColumnRef):
            name = key.display_name()
        else:
            name = f"_groupingexpression{index}"
        taken = {n.lower() for _, n in self.keys}
        return name if name.lower() not in taken else f"{name}_{index}"

    def rewrite(self, expr: Expression) -> Expression:
        return transform(expr, self.replace)

    def replace(self, e: Expression) -> Expression | None:
        if isinstance(e, WindowExpression):
            return self.window_over_groups(e)
        key = self.key_ref(e)
        if key is not None:
            return key
        if isinstance(e, ColumnRef) and e.plan_id is None and e.name.lower() == "grouping__id":
            e = AggregateCall("grouping_id", ())  # Hive's virtual column
        if isinstance(e, AggregateCall) and e.name in ("grouping", "grouping_id"):
            e = dataclasses.replace(e, args=tuple(self.key_ref(a) or a for a in e.args))
        if _is_aggregate_node(e):
            if e not in self.aggs:
                self.aggs.append(e)
            return ColumnRef(f"_agg{self.aggs.index(e)}")
        if isinstance(e, ColumnRef) and not self.names_key(e):
            raise AnalysisException(
                f"[MISSING_AGGREGATION] The column {e.name} is neither in GROUP BY nor "
                "inside an aggregate function. Add it to GROUP BY, or wrap it in an "
                "aggregate such as first() or any_value().", error_class="MISSING_AGGREGATION")
        return None

    def key_ref(self, e: Expression) -> Expression | None:
        """The column of the grouping key ``e`` is, if it is one."""
        for key, name in self.keys:
            if e == key or _same_column(e, key):
                return ColumnRef(_quote(name))
        return None

    def window_over_groups(self, e: WindowExpression) -> Expression:
        """``rank() OVER (ORDER BY sum(v))`` runs over the grouped rows: its arguments,
        partitioning and ordering read the keys and aggregates."""
        function = dataclasses.replace(  # type: ignore[type-var]
            e.function, args=tuple(self.rewrite(a) for a in e.function.children()))
        spec = e.spec
        partition = tuple(self.rewrite(p) for p in spec.partition_by)
        order = tuple(dataclasses.replace(o, child=self.rewrite(o.child))
                      for o in spec.order_by)
        return WindowExpression(function, dataclasses.replace(
            spec, partition_by=partition, order_by=order))

    def names_key(self, ref: ColumnRef) -> bool:
        """``window.start`` over a ``window`` key: a field of a grouped column."""
        head = ref.name.strip("`").split(".")[0].lower()
        return any(head == name.lower() for _, name in self.keys)


def _expression_types(session: SparkSession, child: LogicalPlan,
                      exprs: list[Expression]) -> list[DataType]:
    """The types of ``exprs`` over ``child``'s rows."""
    from unbounded.sql.dataframe import DataFrame

    projected = Project(child, tuple(Alias(e, f"_k{i}") for i, e in enumerate(exprs)))
    return [f.dataType for f in DataFrame(projected, session).schema.fields]


def _same_column(a: Expression, b: Expression) -> bool:
    """``k`` and ``t.k`` name the same grouped column (qualifiers may be left out)."""
    if not (isinstance(a, ColumnRef) and isinstance(b, ColumnRef)):
        return False
    if a.plan_id != b.plan_id:
        return False
    an, bn = a.name.lower(), b.name.lower()
    return an == bn or an.endswith("." + bn) or bn.endswith("." + an)


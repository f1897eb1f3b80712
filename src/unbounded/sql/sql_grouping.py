"""SQL's grouping analytics: ``GROUP BY ROLLUP(...)``, ``CUBE(...)``, ``GROUPING SETS
(...)``, ``GROUP BY a, b WITH ROLLUP|CUBE`` and Hive's ``GROUP BY a, b GROUPING SETS
(...)``, read into the grouping keys and the sets of keys each aggregation groups by.

Items of one GROUP BY multiply, as in Spark: ``GROUP BY a, ROLLUP(b, c)`` groups by
(a, b, c), (a, b) and (a). The plan is then ``grouping_ops.grouping_sets_plan``, the one
the DataFrame methods ``rollup``/``cube`` build.

>>> from unbounded.sql.expr_parser import parse_statement
>>> group = parse_statement("SELECT 1 FROM t GROUP BY a, ROLLUP(b)").args["group"]
>>> keys, sets = group_by_sets(group, lambda n: n.sql())
>>> keys, sets
(['a', 'b'], ((0, 1), (0,)))
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypeVar

from sqlglot import exp

from unbounded.sql.grouping_ops import cube_sets, rollup_sets

__all__ = ["group_by_sets"]

K = TypeVar("K")
_Sets = list[list[exp.Expr]]


def group_by_sets(group: exp.Group, convert: Callable[[exp.Expr], K],
                  ) -> tuple[list[K], tuple[tuple[int, ...], ...] | None]:
    """The distinct grouping keys in order of appearance, and the grouping sets as key
    indices (None for a plain GROUP BY)."""
    plain = list(group.expressions)
    factors = [_item_sets(item) for item in plain]
    analytic = any(isinstance(i, (exp.Rollup, exp.Cube, exp.GroupingSets)) for i in plain)
    hive = group.args.get("grouping_sets")
    if group.args.get("rollup"):  # GROUP BY a, b WITH ROLLUP
        factors, analytic = [_combined(rollup_sets, [[i] for i in plain])], True
    elif group.args.get("cube"):
        factors, analytic = [_combined(cube_sets, [[i] for i in plain])], True
    elif hive:  # GROUP BY a, b GROUPING SETS (...): the sets replace the list
        factors, analytic = [_item_sets(s) for s in hive], True
    sets = [[e for part in combo for e in part] for combo in itertools.product(*factors)]
    if not analytic:
        return [convert(e) for e in plain], None
    return _indexed(sets, convert)


def _indexed(sets: _Sets, convert: Callable[[exp.Expr], K],
             ) -> tuple[list[K], tuple[tuple[int, ...], ...]]:
    keys: list[K] = []
    indexed = []
    for members in sets:
        chosen = []
        for member in members:
            key = convert(member)
            if key not in keys:
                keys.append(key)
            chosen.append(keys.index(key))
        indexed.append(tuple(sorted(set(chosen))))
    return keys, tuple(indexed)


def _item_sets(item: exp.Expr) -> _Sets:
    """The grouping sets one GROUP BY item stands for."""
    if isinstance(item, exp.Rollup):
        return _combined(rollup_sets, [_members(e) for e in item.expressions])
    if isinstance(item, exp.Cube):
        return _combined(cube_sets, [_members(e) for e in item.expressions])
    if isinstance(item, exp.GroupingSets):
        return [_members(e) for e in item.expressions]
    return [[item]]


def _combined(sets_of: Callable[[int], tuple[tuple[int, ...], ...]],
              elements: list[list[exp.Expr]]) -> _Sets:
    """ROLLUP/CUBE over ``elements``, each a column or a parenthesised column group."""
    return [[e for i in chosen for e in elements[i]] for chosen in sets_of(len(elements))]


def _members(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.Tuple):
        return list(node.expressions)
    if isinstance(node, exp.Paren):
        return _members(node.this)
    return [node]

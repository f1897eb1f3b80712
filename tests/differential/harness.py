"""Differential testing against PySpark: random data and random queries from a grammar,
run by either engine through the PySpark API both share, answers compared row for row.

A case is JSON: the input tables (DDL schema + rows), the session conf, the mode
(``batch`` or ``streaming``) and a list of operations. ``run_case`` interprets it with an
engine's own ``SparkSession``/``functions``/``Window``, so the same code drives PySpark
(when the fixtures are recorded) and unbounded (when they are replayed). Answers are
normalised (timestamps as ISO strings, floats to 9 significant digits, NaN as "NaN") and
compared as multisets; an error is compared by its error class.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Engine", "generate_case", "normalise_rows", "run_case"]

LEFT_SCHEMA = "id LONG, k STRING, v LONG, d DOUBLE, ts TIMESTAMP"
RIGHT_SCHEMA = "k STRING, w LONG"
_KEYS = ["a", "b", "c", "ab", None]
_T0 = dt.datetime(2026, 1, 1, 10, 0, 0)

# Python UDFs by name: a case names one, each engine wraps it with its own F.udf.
UDFS: dict[str, tuple[Callable[..., Any], str, str]] = {
    "plus_one": (lambda x: None if x is None else x + 1, "long", "v"),
    "key_len": (lambda s: None if s is None else len(s), "int", "k"),
    "shout": (lambda s: None if s is None else s.upper() + "!", "string", "k"),
    "half": (lambda x: None if x is None else x / 2, "double", "d"),
}


@dataclass(frozen=True)
class Engine:
    """One engine's PySpark-shaped modules and a session."""

    spark: Any
    F: Any
    Window: Any


# ---- data ------------------------------------------------------------------------------
def _left_rows(rng: random.Random, n: int) -> list[list[Any]]:
    rows = []
    for i in range(n):
        v = rng.choice([None, 0, 1, 2, 3, 5, 8, -4, 13])
        d = rng.choice([None, 0.5, -1.25, 2.0, 3.75, 10.0, 0.0])
        ts = (_T0 + dt.timedelta(seconds=rng.randrange(0, 600))).isoformat(sep=" ")
        rows.append([i, rng.choice(_KEYS), v, d, ts])
    return rows


def _right_rows(rng: random.Random, n: int) -> list[list[Any]]:
    return [[rng.choice(_KEYS), rng.randrange(-3, 10)] for _ in range(n)]


# ---- expressions (SQL strings, typed) ------------------------------------------------------
def _num(rng: random.Random, depth: int) -> str:
    leaves = ["v", "id", "d", str(rng.randrange(1, 6)), "coalesce(v, 0)"]
    if depth <= 0:
        return rng.choice(leaves)
    a, b = _num(rng, depth - 1), _num(rng, depth - 1)
    return rng.choice([
        f"({a} + {b})", f"({a} - {b})", f"({a} * {b})", f"abs({a})", f"({a} % 3)",
        f"round({a} / 4, 2)", f"greatest({a}, {b})", f"least({a}, {b})",
        f"CASE WHEN {a} > {b} THEN {a} ELSE {b} END", f"CAST({a} AS DOUBLE)",
        "CAST(d AS INT)", f"({a} / (v - 1))", f"nvl({a}, -1)",
    ])


def _str(rng: random.Random, depth: int) -> str:
    leaves = ["k", "'x'", "CAST(id AS STRING)", "coalesce(k, 'none')"]
    if depth <= 0:
        return rng.choice(leaves)
    a = _str(rng, depth - 1)
    return rng.choice([
        f"upper({a})", f"lower({a})", f"concat({a}, '-', {_num(rng, 0)})", f"trim({a})",
        f"substr({a}, 1, 2)", f"CASE WHEN {a} IS NULL THEN 'null' ELSE {a} END",
        f"CAST(length({a}) AS STRING)", f"concat_ws('|', {a}, k)", f"reverse({a})",
    ])


def _pred(rng: random.Random) -> str:
    n = rng.randrange(-2, 9)
    return rng.choice([
        f"v > {n}", f"v <= {n}", f"k = '{rng.choice(['a', 'b', 'c'])}'", "k IS NULL",
        "k IS NOT NULL", f"d < {n}", "k IN ('a', 'ab')", f"NOT (v = {n})",
        f"v > {n} AND d IS NOT NULL", f"k LIKE 'a%' OR v < {n}", f"id % 2 = {n % 2}",
        "ts >= '2026-01-01 10:05:00'",
    ])


_AGGS = ["count(1)", "count(v)", "sum(v)", "avg(d)", "min(k)", "max(v)", "min(d)",
         "count(DISTINCT k)", "sum(2)", "max(ts)", "sum(d)", "count(*)"]


# ---- operations ------------------------------------------------------------------------------
def _op_project(rng: random.Random) -> dict[str, Any]:
    exprs = ["id"] + [f"{g(rng, rng.randrange(0, 3))} AS c{i}"
                      for i, g in enumerate(rng.sample([_num, _str, _num, _str], 2))]
    return {"op": "selectExpr", "exprs": exprs}


def _op_filter(rng: random.Random) -> dict[str, Any]:
    return {"op": "filter", "expr": _pred(rng)}


def _op_udf(rng: random.Random) -> dict[str, Any]:
    name = rng.choice(sorted(UDFS))
    return {"op": "udf", "name": name, "as": f"u_{name}"}


def _op_with_column(rng: random.Random) -> dict[str, Any]:
    return {"op": "withColumn", "name": "x", "expr": _num(rng, rng.randrange(0, 3))}


def generate_case(seed: int, mode: str) -> dict[str, Any]:
    """A random case: the seed fixes data and query."""
    rng = random.Random(seed)
    ops: list[dict[str, Any]] = []
    row_ops = [_op_filter, _op_with_column, _op_udf]
    for _ in range(rng.randrange(0, 3)):
        ops.append(rng.choice(row_ops)(rng))
    tail = rng.choice(["project", "agg", "join", "window", "dedup", "join_agg"]
                      if mode == "batch" else ["project", "agg", "dedup", "join"])
    ops.extend(_tail(rng, tail))
    conf = {"spark.sql.ansi.enabled": rng.choice(["true", "true", "false"])}
    return {"id": f"{mode}-{seed}", "seed": seed, "mode": mode, "conf": conf,
            "left": {"schema": LEFT_SCHEMA, "rows": _left_rows(rng, rng.randrange(0, 40))},
            "right": {"schema": RIGHT_SCHEMA, "rows": _right_rows(rng, rng.randrange(0, 12))},
            "ops": ops}


def _tail(rng: random.Random, kind: str) -> list[dict[str, Any]]:
    if kind == "project":
        return [_op_project(rng)]
    if kind == "agg":
        keys = rng.choice([[], ["k"], ["k", "v"]])
        return [{"op": "agg", "keys": keys,
                 "aggs": [f"{a} AS a{i}" for i, a in enumerate(rng.sample(_AGGS, 3))]}]
    if kind == "join":
        return [{"op": "join", "how": rng.choice(["inner", "left", "left_semi", "left_anti",
                                                  "right", "full"]
                                                 ), "on": ["k"]}]
    if kind == "join_agg":
        return [{"op": "join", "how": "inner", "on": ["k"]},
                {"op": "agg", "keys": ["k"], "aggs": ["count(1) AS n", "sum(w) AS sw"]}]
    if kind == "window":
        fn = rng.choice(["row_number", "rank", "dense_rank", "lag", "lead", "sum"])
        return [{"op": "window", "fn": fn, "partition": ["k"], "order": ["v", "id"]}]
    subset = rng.choice([["k"], ["k", "v"], ["v"]])
    return [{"op": "dropDuplicates", "subset": subset}, {"op": "selectExpr", "exprs": subset}]


# ---- running a case --------------------------------------------------------------------------
def _table(engine: Engine, table: dict[str, Any]) -> Any:
    rows = [tuple(_parse_ts(v) if i == 4 else v for i, v in enumerate(r)) for r in table["rows"]]
    return engine.spark.createDataFrame(rows, table["schema"])


def _parse_ts(value: Any) -> Any:
    return value if value is None else dt.datetime.fromisoformat(value)


def apply_ops(engine: Engine, df: Any, right: Any, ops: list[dict[str, Any]]) -> Any:
    """The query ``ops`` over ``df`` (``right`` is the join's other side)."""
    F = engine.F
    for op in ops:
        kind = op["op"]
        if kind == "selectExpr":
            df = df.selectExpr(*op["exprs"])
        elif kind == "filter":
            df = df.filter(op["expr"])
        elif kind == "withColumn":
            df = df.withColumn(op["name"], F.expr(op["expr"]))
        elif kind == "udf":
            fn, rtype, arg = UDFS[op["name"]]
            df = df.withColumn(op["as"], F.udf(fn, rtype)(F.col(arg)))
        elif kind == "agg":
            aggs = [F.expr(a) for a in op["aggs"]]
            df = df.groupBy(*op["keys"]).agg(*aggs)
        elif kind == "join":
            df = df.join(right, op["on"], op["how"])
        elif kind == "window":
            df = df.withColumn("wf", _window_column(engine, op))
        elif kind == "dropDuplicates":
            df = df.dropDuplicates(op["subset"])
        else:
            raise ValueError(f"unknown operation {kind!r}")
    return df


def _window_column(engine: Engine, op: dict[str, Any]) -> Any:
    F, W = engine.F, engine.Window
    spec = W.partitionBy(*op["partition"]).orderBy(*op["order"])
    fn = op["fn"]
    if fn in ("lag", "lead"):
        return getattr(F, fn)("v", 1).over(spec)
    if fn == "sum":
        return F.sum("v").over(spec)
    return getattr(F, fn)().over(spec)


def run_case(engine: Engine, case: dict[str, Any], workdir: str) -> dict[str, Any]:
    """The case's answer on ``engine``: ``{"rows": [...]}`` or ``{"error": class}``."""
    for key, value in case["conf"].items():
        engine.spark.conf.set(key, value)
    try:
        if case["mode"] == "streaming":
            rows = _run_streaming(engine, case, workdir)
        else:
            left, right = _table(engine, case["left"]), _table(engine, case["right"])
            rows = apply_ops(engine, left, right, case["ops"]).collect()
    except Exception as err:  # the answer is the error's class, compared as such
        return {"error": error_class_of(err)}
    return {"rows": normalise_rows(rows)}


_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)\]")


def error_class_of(err: BaseException) -> str:
    """The Spark error class of ``err``: the first ``[CLASS]`` of its message other than
    a streaming query's own ``STREAM_FAILED`` (the cause's class follows it)."""
    found = [c for c in _ERROR_CLASS.findall(str(err)) if c != "STREAM_FAILED"]
    if found:
        return found[0]
    getter = getattr(err, "getErrorClass", None) or getattr(err, "getCondition", None)
    named = getter() if getter is not None else None
    return str(named) if named else type(err).__name__


def _run_streaming(engine: Engine, case: dict[str, Any], workdir: str) -> list[Any]:
    """The query over a file stream of the left rows (3 files, one per batch), static
    right side; aggregations run in complete mode and answer with the last batch."""
    folder = os.path.join(workdir, "in")
    os.makedirs(folder, exist_ok=True)
    rows = case["left"]["rows"]
    for part in range(3):
        with open(os.path.join(folder, f"part-{part}.json"), "w") as out:
            for r in rows[part::3]:
                out.write(json.dumps(dict(zip(["id", "k", "v", "d", "ts"], r, strict=True))) + "\n")
    stream = engine.spark.readStream.schema(case["left"]["schema"]) \
        .option("maxFilesPerTrigger", 1).json(folder)
    query_df = apply_ops(engine, stream, _table(engine, case["right"]), case["ops"])
    aggregated = any(op["op"] == "agg" for op in case["ops"])
    batches: dict[int, list[Any]] = {}

    def keep(df: Any, batch_id: int) -> None:
        batches[batch_id] = df.collect()

    query = (query_df.writeStream.outputMode("complete" if aggregated else "append")
             .foreachBatch(keep).option("checkpointLocation", os.path.join(workdir, "cp"))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    if query.exception() is not None:
        raise query.exception()
    if aggregated:
        return batches[max(batches)] if batches else []
    return [r for b in sorted(batches) for r in batches[b]]


# ---- normalising answers -----------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if hasattr(value, "asDict"):
        return {k: _plain(v) for k, v in value.asDict(recursive=True).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return float(f"{value:.9g}")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def normalise_rows(rows: list[Any]) -> list[list[Any]]:
    """Rows as sorted lists of plain values (the answer is a multiset)."""
    plain = [[_plain(v) for v in tuple(r)] for r in rows]
    return sorted(plain, key=lambda r: json.dumps(r, sort_keys=True, default=str))

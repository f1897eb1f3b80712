"""The public surface is listed once and pinned here; every module declares ``__all__``."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import unbounded
import unbounded.sql
from unbounded.sql import functions as F

PACKAGE = Path(unbounded.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))

# The PySpark names a port relies on (pyspark.sql.functions): never drop one silently.
REQUIRED_FUNCTIONS = {
    "col", "lit", "expr", "when", "coalesce", "concat", "upper", "lower", "length", "split",
    "from_json", "to_json", "get_json_object", "to_timestamp", "timestamp_seconds",
    "current_timestamp", "date_format", "struct", "hash", "window", "count", "sum", "avg",
    "min", "max", "explode", "explode_outer", "posexplode", "array", "create_map", "map_keys",
    "map_values", "regexp_extract", "regexp_replace", "json_tuple", "sha2", "md5", "crc32",
    "max_by", "min_by", "percentile_approx", "date_trunc", "from_unixtime", "unix_timestamp",
    "nvl", "greatest", "least", "row_number", "rank", "dense_rank", "lag", "lead",
    "udf", "pandas_udf", "PandasUDFType", "call_udf",
}


def test_top_level_all_is_pinned():
    assert unbounded.__all__ == ["AnalysisException", "StreamingQueryException",
                                 "UnboundedError", "__version__"]


def test_sql_all_is_pinned():
    assert unbounded.sql.__all__ == [
        "Catalog", "Column", "DataFrame", "DataFrameReader", "DataFrameWriter",
        "DataStreamReader", "DataStreamWriter",
        "GroupedData", "Row", "RuntimeConfig", "SparkSession", "StreamingQuery",
        "StreamingQueryManager", "Window", "WindowSpec", "functions", "types"]


def test_functions_all_is_pinned():
    """The core list is pinned here; each function family module (``sql/*_functions.py``)
    appends its own ``__all__`` after it."""
    families = [m for name, m in vars(F).items()
                if name.endswith("_functions") and isinstance(m, ModuleType)]
    assert F.__all__[:len(_CORE_FUNCTIONS)] == _CORE_FUNCTIONS
    assert sorted(F.__all__[len(_CORE_FUNCTIONS):]) == sorted(
        n for m in families for n in m.__all__)
    assert set(F.__all__) >= REQUIRED_FUNCTIONS


_CORE_FUNCTIONS = [
        "PandasUDFType", "abs", "approx_count_distinct", "array", "array_contains", "asc",
        "avg", "base64", "broadcast", "call_udf", "ceil", "coalesce", "col", "collect_list",
        "collect_set", "column", "concat", "concat_ws", "count", "countDistinct",
        "count_distinct", "crc32", "create_map", "cume_dist", "current_date",
        "current_timestamp", "date_add", "date_format", "date_trunc", "datediff",
        "dayofmonth", "dayofweek", "dense_rank", "desc", "element_at", "exp", "explode",
        "explode_outer", "expr", "first", "floor", "from_json", "from_unixtime",
        "get_json_object", "greatest", "hash", "hour", "ifnull", "initcap", "instr",
        "isnan", "isnull", "json_tuple", "lag", "last", "lead", "least", "length", "lit",
        "log", "lower", "lpad", "ltrim", "map_keys", "map_values", "max", "max_by", "md5",
        "mean", "min", "min_by", "minute", "month", "nth_value", "ntile", "nullif", "nvl",
        "pandas_udf",
        "percent_rank", "percentile_approx", "posexplode", "posexplode_outer", "rank",
        "regexp_extract", "regexp_replace", "reverse", "round", "row_number", "rpad",
        "rtrim", "second", "session_window", "sha1", "sha2", "size", "split", "sqrt",
        "stddev", "struct", "substring", "sum", "sumDistinct", "sum_distinct",
        "timestamp_millis", "timestamp_seconds", "to_date", "to_json", "to_timestamp",
        "trim", "udf", "unix_timestamp", "upper", "variance", "when", "window",
        "window_time", "year"]


@pytest.mark.parametrize("module", [unbounded, unbounded.sql, F])
def test_every_exported_name_resolves(module):
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.__all__ lists missing {name!r}"


def _declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = ast.literal_eval(node.value)  # type: ignore[arg-type]
            return list(value)
    return None


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def test_the_package_has_modules_to_check():
    assert len(MODULES) > 40
    assert (PACKAGE / "sql" / "dataframe.py") in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_declares_all_of_names_it_defines(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exported = _declared_all(tree)
    assert exported is not None, f"{path.relative_to(PACKAGE)} does not declare __all__"
    missing = set(exported) - _top_level_names(tree)
    if path.name == "__init__.py":
        missing -= {p.stem for p in path.parent.iterdir()} | {p.name for p in path.parent.iterdir()}
    assert not missing, f"{path.relative_to(PACKAGE)}: __all__ names undefined {missing}"
    assert len(exported) == len(set(exported)), f"{path.name}: __all__ repeats a name"


def test_streaming_state_all_is_pinned():
    """``pyspark.sql.streaming.state``'s and ``stateful_processor``'s names;
    ``unbounded.sql.streaming`` is a module, so they live in
    ``unbounded.sql.streaming_state``."""
    import unbounded.sql.streaming_state as state

    assert state.__all__ == ["ExpiredTimerInfo", "GroupState", "GroupStateTimeout", "ListState",
                             "MapState", "StatefulProcessor", "StatefulProcessorHandle",
                             "TimerValues", "ValueState"]
    assert state.GroupStateTimeout.EventTimeTimeout == "EventTimeTimeout"

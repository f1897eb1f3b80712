"""Imports run one way (STYLE.md): each module imports only from layers below its own,
or from its own family; a helper two families share lives below both.

Every import counts, including lazy ones inside functions; imports under
``if TYPE_CHECKING:`` do not, as they never run. A new package must be placed in
``LAYERS`` before its modules pass.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import unbounded

PACKAGE = Path(unbounded.__file__).resolve().parent
SRC = PACKAGE.parent

# Top to bottom. Families on one line are siblings: they import neither each other nor
# anything above. A module belongs to the longest family prefix that names it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("unbounded.cli",),
    ("unbounded.demo",),  # starts the local broker of unbounded.testing
    ("unbounded.tools",),  # checkpoint tools (inspect, validate, rewind) the CLI renders
    ("unbounded", "unbounded.testing"),
    ("unbounded.session",),
    ("unbounded.sql",),
    # observe: listeners, metrics, the HTTP server; fed by runtime.events, never imports it
    ("unbounded.runtime", "unbounded.observe"),
    ("unbounded.runtime.stateful",),
    ("unbounded.engine", "unbounded.state", "unbounded.sources", "unbounded.sinks"),
    ("unbounded.files", "unbounded._kafka", "unbounded.executors",
     # crash points the batch loop and the sinks pass through; stdlib only
     "unbounded.testing.faults"),
    ("unbounded.plan", "unbounded.checkpoint", "unbounded.config"),
    ("unbounded.errors", "unbounded.startup"),  # startup: stdlib only (the gc pause)
)

# (importer family, imported module): why the arrow may point this way.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("unbounded.sql", "unbounded.session"):
        "sql/__init__ re-exports SparkSession as pyspark.sql does (STYLE allows __init__ "
        "to import session); session imports the sql modules only inside its methods",
    ("unbounded.files", "unbounded.engine.dtypes"):
        "the Spark->Polars type map the csv/JSON parsers cast with; engine/dtypes.py "
        "depends on plan.types only and stays in engine/ while engine/ is rewritten "
        "(issue 8); its home is below files/",
    ("unbounded.sources", "unbounded.engine.dtypes"):
        "the file source casts Parquet columns with the same Spark->Polars type map; "
        "goes away when engine/dtypes.py moves below files/",
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def family(module: str) -> str:
    names = [f for layer in LAYERS for f in layer if module == f or module.startswith(f + ".")]
    if not names:
        raise AssertionError(f"{module} is in no family of LAYERS; place its package there")
    return max(names, key=len)


def layer_of(fam: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if fam in layer)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that can run, i.e. all but the bodies of ``if TYPE_CHECKING:``."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = list(node.orelse)
        todo.extend(children)
    return out


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(path: Path) -> list[Import]:
    module, tree = module_name(path), ast.parse(path.read_text(), str(path))
    found = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _target(module, path.name == "__init__.py", node)
            found += [Import(module, _submodule(target, a.name), node.lineno)
                      for a in node.names]
    return [i for i in found if i.imported.split(".")[0] == "unbounded"]


def _submodule(target: str, name: str) -> str:
    """``from unbounded.sql import functions`` imports the module ``unbounded.sql.functions``."""
    candidate = f"{target}.{name}"
    as_path = SRC.joinpath(*candidate.split("."))
    return candidate if as_path.with_suffix(".py").exists() or as_path.is_dir() else target


def excepted(imp: Import) -> bool:
    return any(family(imp.importer) == fam and _names(imp.imported, mod)
               for fam, mod in EXCEPTIONS)


def _names(imported: str, module: str) -> bool:
    return imported == module or imported.startswith(module + ".")


def violation(imp: Import) -> str | None:
    src, dst = family(imp.importer), family(imp.imported)
    if src == dst or excepted(imp):
        return None
    if layer_of(dst) > layer_of(src):
        return None
    way = "sideways" if layer_of(dst) == layer_of(src) else "upward"
    return f"{imp.importer}:{imp.line} imports {imp.imported} ({way}: {src} -> {dst})"


def all_imports() -> list[Import]:
    return [i for p in sorted(PACKAGE.rglob("*.py")) for i in imports_of(p)]


def test_every_import_points_down_the_layers():
    problems = list(dict.fromkeys(v for v in map(violation, all_imports()) if v))
    assert problems == [], "\n".join(problems)


def test_each_exception_is_still_needed():
    used = {(fam, mod) for i in all_imports() for fam, mod in EXCEPTIONS
            if family(i.importer) == fam and _names(i.imported, mod)}
    assert set(EXCEPTIONS) - used == set()


def test_the_checker_names_upward_and_sideways_imports():
    upward = Import("unbounded.engine.plans", "unbounded.runtime.microbatch", 3)
    sideways = Import("unbounded.sinks.kafka", "unbounded.sources.kafka", 4)
    assert violation(upward) == ("unbounded.engine.plans:3 imports unbounded.runtime."
                                  "microbatch (upward: unbounded.engine -> unbounded.runtime)")
    assert violation(sideways) == ("unbounded.sinks.kafka:4 imports unbounded.sources.kafka "
                                   "(sideways: unbounded.sinks -> unbounded.sources)")
    assert violation(Import("unbounded.runtime.tasks", "unbounded.engine.plans", 1)) is None


def test_imports_inside_functions_count_and_type_checking_ones_do_not():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from unbounded.session import SparkSession\n"
              "def f():\n    from unbounded.sql.dataframe import DataFrame\n")
    tree = ast.parse(source)
    seen = [n.module for n in _runtime_nodes(tree) if isinstance(n, ast.ImportFrom)]
    assert sorted(seen) == ["typing", "unbounded.sql.dataframe"]


def test_import_unbounded_session_works_as_the_first_import():
    done = subprocess.run([sys.executable, "-c", "import unbounded.session"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


_EACH_MODULE_FIRST = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "unbounded" or m.startswith("unbounded.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {error!r}")
print("\\n".join(failed))
"""


def test_every_module_imports_as_the_first_import():
    """An import cycle shows only when a module of the cycle is imported first."""
    names = [module_name(p) for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"]
    # Two processes, each re-importing our modules ~200 times: half the wall time, and a
    # limit that a loaded 2-core machine does not reach (one process took ~120 s there).
    halves = [subprocess.Popen([sys.executable, "-c", _EACH_MODULE_FIRST, *names[i::2]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i in range(2)]
    try:
        outputs = [half.communicate(timeout=300) for half in halves]
    finally:
        for half in halves:
            half.kill()
            half.wait()
    assert [half.returncode for half in halves] == [0, 0], [err for _, err in outputs]
    assert "".join(out for out, _ in outputs).strip() == ""


def test_a_module_belongs_to_the_longest_family_prefix():
    assert family("unbounded.testing.stream") == "unbounded.testing"
    assert family("unbounded.testing.faults") == "unbounded.testing.faults"
    assert family("unbounded.runtime.stateful.base") == "unbounded.runtime.stateful"
    assert family("unbounded.runtime.tasks") == "unbounded.runtime"

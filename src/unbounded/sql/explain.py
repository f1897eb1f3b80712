"""The text ``explain()`` prints: Spark's sections, from this engine's plans.

Spark prints ``== Parsed Logical Plan ==``, ``== Analyzed Logical Plan ==`` (headed by the
output schema), ``== Optimized Logical Plan ==`` and ``== Physical Plan ==``. Plans here are
resolved as they are built and are not rewritten before running, so the parsed, analysed
and optimised trees are one tree; the physical plan shows how a streaming query runs: each
stateful node is marked with the operator id its state is kept under.
"""

from __future__ import annotations

from collections.abc import Callable

from unbounded.plan.logical import LogicalPlan, is_streaming
from unbounded.runtime.stages import plan_stages

__all__ = ["explain_modes", "explain_text"]

_MODES = ("simple", "extended", "codegen", "cost", "formatted")


def explain_modes() -> tuple[str, ...]:
    """The modes PySpark's ``DataFrame.explain(mode=...)`` accepts."""
    return _MODES


def explain_text(plan: LogicalPlan, schema: str, mode: str = "simple") -> str:
    """The sections ``mode`` asks for; ``schema`` is the output as ``a: int, b: string``."""
    if mode not in _MODES:
        raise ValueError(f"Unknown explain mode: {mode!r}. Accepted explain modes are "
                         f"{', '.join(repr(m) for m in _MODES)}.")
    physical = "== Physical Plan ==\n" + physical_tree(plan)
    if mode not in ("extended", "cost"):
        return physical + "\n"
    logical = _tree(plan, lambda _: "")
    return (f"== Parsed Logical Plan ==\n{logical}\n\n"
            f"== Analyzed Logical Plan ==\n{schema}\n{logical}\n\n"
            f"== Optimized Logical Plan ==\n{logical}\n\n{physical}\n")


def physical_tree(plan: LogicalPlan) -> str:
    """The plan with each stateful operator of a streaming query marked by its id."""
    if not is_streaming(plan):
        return _tree(plan, lambda _: "")
    ids = {id(stage.node): stage.operator_id for stage in plan_stages(plan).operators}
    return _tree(plan, lambda node: f"StateStore[operatorId={ids[id(node)]}] "
                 if id(node) in ids else "")


def _tree(plan: LogicalPlan, mark: Callable[[LogicalPlan], str], indent: int = 0) -> str:
    prefix = "" if indent == 0 else "   " * (indent - 1) + "+- "
    lines = [prefix + mark(plan) + plan.describe()]
    lines.extend(_tree(child, mark, indent + 1) for child in plan.children())
    return "\n".join(lines)

"""Reader and writer options as the text Spark keeps them in.

PySpark turns every option value into a string before the JVM sees it, booleans as
``true``/``false`` (``str(True)`` would be ``True``, which Spark's parsers of
``header``, ``mergeSchema`` and the like do not all accept); the batch and the streaming
readers and writers share this one conversion so the same option means the same thing
in both.
"""

from __future__ import annotations

from typing import Any

__all__ = ["option_text"]


def option_text(value: Any) -> str:
    """``value`` as Spark stores an option: booleans in lower case, the rest by ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

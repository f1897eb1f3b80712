"""Reader and writer options as the text Spark keeps them in.

PySpark turns every option value into a string before the JVM sees it, booleans as
``true``/``false`` (``str(True)`` would be ``True``, which Spark's parsers of
``header``, ``mergeSchema`` and the like do not all accept); the batch and the streaming
readers and writers share this one conversion so the same option means the same thing
in both, through one base class.
"""

from __future__ import annotations

from typing import Any, Self

__all__ = ["OptionsBuilder", "option_text"]


def option_text(value: Any) -> str:
    """``value`` as Spark stores an option: booleans in lower case, the rest by ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class OptionsBuilder:
    """``option``/``options`` of PySpark's four readers and writers, which chain."""

    _options: dict[str, str]

    def option(self, key: str, value: Any) -> Self:
        self._options[key] = option_text(value)
        return self

    def options(self, **options: Any) -> Self:
        for k, v in options.items():
            self.option(k, v)
        return self

"""The contract every streaming source keeps.

A source turns "what is new since offset A" into replayable micro-batches. Offsets are
JSON values (they are written verbatim into the checkpoint's offset log), and
``partitions(start, end)`` must describe the same rows every time it is called with the
same range, even in a new process: that is what makes a re-run batch deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import polars as pl
import pyarrow as pa

from unbounded.plan.types import StructType

__all__ = [
    "InputPartition",
    "Offset",
    "Source",
    "SourceContext",
    "SupportsAvailableNow",
    "SupportsLazyScan",
    "SupportsStatusReports",
    "parse_bool_option",
    "parse_int_option",
]

Offset = Any  # a JSON value: int, str, list or dict


@dataclass(frozen=True)
class SourceContext:
    """What a source is built with.

    ``metadata_path`` is the source's own folder in the checkpoint
    (``<checkpoint>/sources/<index>``), for sources that log what each batch read.
    ``extra`` carries what the runtime knows beyond the options: ``"conf"``, the
    session's conf (e.g. ``spark.sql.sources.partitionColumnTypeInference.enabled``), and
    once a query starts, ``"planned_schema"``, the schema its DataFrame was defined with
    (a file source fixes its partition columns' types from it, as Spark does at load).
    """

    options: dict[str, str]
    schema: StructType | None
    metadata_path: str | None
    source_index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: str | None = None) -> str | None:
        from unbounded.config import option_value

        return option_value(self.options, key, default)


@runtime_checkable
class InputPartition(Protocol):
    """One slice of a batch that a task reads on its own; picklable, so an executor can
    ship it. ``read`` returns the same rows each time."""

    def read(self) -> pa.Table: ...


@runtime_checkable
class SupportsLazyScan(Protocol):
    """A partition that can also be read as a lazy Polars scan, so a task can fuse the
    read with the work after it; ``scan`` returns None when it cannot (then ``read``)."""

    def scan(self) -> tuple[pl.LazyFrame, int] | None:
        """The lazy rows (exactly what ``read`` returns) and their count."""
        ...


@runtime_checkable
class Source(Protocol):
    """A replayable stream of rows addressed by offsets.

    Invariants: ``latest_offset`` never goes backwards; ``partitions(start, end)`` for a
    range returned before returns the same rows after a restart; ``commit(end)`` tells
    the source that everything up to ``end`` is durable downstream and may be released.
    """

    @property
    def schema(self) -> StructType: ...

    @property
    def description(self) -> str: ...

    def latest_offset(self, start: Offset | None, *, respect_limits: bool = True) -> Offset | None:
        """The end offset of the next batch given that ``start`` was processed, honouring
        the source's rate limits (``maxFilesPerTrigger``...) when ``respect_limits``."""
        ...

    def partitions(self, start: Offset | None, end: Offset) -> list[InputPartition]:
        """The rows in ``(start, end]``, split into independently readable partitions."""
        ...

    def commit(self, end: Offset) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class SupportsAvailableNow(Protocol):
    """A source that can fix its end at "everything present now" (Trigger.AvailableNow)."""

    def prepare_for_available_now(self) -> None: ...


@runtime_checkable
class SupportsStatusReports(Protocol):
    """A source that describes its waits (e.g. for unreachable brokers) in the query's
    ``status``; it calls ``listener(message)`` from whichever thread waits."""

    def report_status_to(self, listener: Callable[[str], None]) -> None: ...


def parse_int_option(ctx: SourceContext, key: str, default: int | None) -> int | None:
    from unbounded.errors import AnalysisException

    raw = ctx.option(key)
    if raw is None:
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise AnalysisException(
            f"Option {key!r} must be a whole number, got {raw!r}.",
            error_class="INVALID_OPTION",
        ) from None
    if value <= 0:
        raise AnalysisException(f"Option {key!r} must be positive, got {value}.",
                                error_class="INVALID_OPTION")
    return value


def parse_bool_option(ctx: SourceContext, key: str, default: bool) -> bool:
    from unbounded.errors import AnalysisException

    raw = ctx.option(key)
    if raw is None:
        return default
    lowered = str(raw).strip().lower()
    if lowered not in ("true", "false"):
        raise AnalysisException(f"Option {key!r} must be 'true' or 'false', got {raw!r}.",
                                error_class="INVALID_OPTION")
    return lowered == "true"

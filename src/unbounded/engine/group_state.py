"""``applyInPandasWithState``'s user-facing state and the call of the user function.

``GroupState`` and ``GroupStateTimeout`` behave as PySpark 4.3's
(``pyspark.sql.streaming.state``): the state is a tuple of the declared state schema's
fields, the timeout is reset on every call (the function sets it again or has none), and
a timed-out key is called with one empty DataFrame and ``hasTimedOut`` true. The
streaming operator that keeps the state is ``runtime/stateful/group_state.py``; a batch
DataFrame fails as in Spark.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from unbounded.engine.context import CompileContext, fresh_columns
from unbounded.engine.dtypes import arrow_schema_to_polars
from unbounded.engine.plans import Bindings, compile_plan
from unbounded.errors import UnsupportedOperationException
from unbounded.plan.logical import FlatMapGroupsInPandasWithState, GroupStateTimeoutKind
from unbounded.plan.types import StructType

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NO_TIMESTAMP", "GroupState", "GroupStateTimeout", "StateOutcome", "user_frames"]

NO_TIMESTAMP = -1


class GroupStateTimeout:
    """The timeouts ``applyInPandasWithState`` accepts (PySpark's string constants)."""

    NoTimeout: str = GroupStateTimeoutKind.NONE.value
    ProcessingTimeTimeout: str = GroupStateTimeoutKind.PROCESSING_TIME.value
    EventTimeTimeout: str = GroupStateTimeoutKind.EVENT_TIME.value


@dataclass(frozen=True)
class StateOutcome:
    """What one call left: whether to write (or delete) the key's state, and with what."""

    exists: bool
    value: tuple[Any, ...] | None
    timeout_ms: int
    write: bool
    delete: bool


class GroupState:
    """The state of one group in one call of the user function.

    >>> s = GroupState(None, processing_time_ms=1000, watermark_ms=-1, n_fields=2,
    ...                timeout_conf="ProcessingTimeTimeout", has_timed_out=False,
    ...                watermark_present=False)
    >>> s.exists, s.getOption
    (False, None)
    >>> s.update((1, "a")); s.setTimeoutDuration(500); s.get
    (1, 'a')
    >>> s.outcome(NO_TIMESTAMP).timeout_ms
    1500
    """

    NO_TIMESTAMP: int = NO_TIMESTAMP

    def __init__(self, value: tuple[Any, ...] | None, *, processing_time_ms: int,
                 watermark_ms: int, timeout_conf: str, has_timed_out: bool,
                 watermark_present: bool, n_fields: int) -> None:
        self._value = value
        self._defined = value is not None
        self._updated = self._removed = False
        self._processing_time_ms = processing_time_ms
        self._watermark_ms = watermark_ms
        self._timeout_conf = timeout_conf
        self._has_timed_out = has_timed_out
        self._watermark_present = watermark_present
        self._n_fields = n_fields
        self._timeout_ms = NO_TIMESTAMP  # reset on every call, as in Spark

    @property
    def exists(self) -> bool:
        """Whether state exists."""
        return self._defined

    @property
    def get(self) -> tuple[Any, ...]:
        """The state value; ``ValueError`` when there is none."""
        if self._value is None or not self._defined:
            raise ValueError("[STATE_NOT_EXISTS] State is either not defined or has already "
                             "been removed.")
        return tuple(self._value)

    @property
    def getOption(self) -> tuple[Any, ...] | None:
        """The state value, or None."""
        return tuple(self._value) if self._value is not None and self._defined else None

    @property
    def hasTimedOut(self) -> bool:
        """Whether this call is for a key whose timeout expired (no new rows)."""
        return self._has_timed_out

    def update(self, newValue: tuple[Any, ...]) -> None:
        """Replace the state value (a tuple of the state schema's fields; not None)."""
        if newValue is None:
            raise TypeError("[CANNOT_BE_NONE] Argument `newValue` cannot be None.")
        values = tuple(_python_value(v) for v in newValue)
        if len(values) != self._n_fields:
            raise ValueError(f"[STATE_SCHEMA_MISMATCH] The state has {self._n_fields} fields "
                             f"but update() got {len(values)} values: {values!r}.")
        self._value, self._defined, self._updated, self._removed = values, True, True, False

    def remove(self) -> None:
        """Remove the state (a timeout set in this call still fires)."""
        self._defined, self._updated, self._removed = False, False, True

    def setTimeoutDuration(self, durationMs: int) -> None:
        """Time out after ``durationMs`` of processing time without rows for this key."""
        if isinstance(durationMs, str):
            raise TypeError("[NOT_EXPECTED_TYPE] Argument `durationMs` should be int, got str.")
        if self._timeout_conf != GroupStateTimeout.ProcessingTimeTimeout:
            raise RuntimeError("[CANNOT_WITHOUT] Cannot set timeout duration without enabling "
                               "processing time timeout in applyInPandasWithState.")
        if durationMs <= 0:
            raise ValueError("[VALUE_NOT_POSITIVE] Value for `durationMs` must be positive, "
                             f"got '{durationMs}'.")
        self._timeout_ms = int(durationMs) + self._processing_time_ms

    def setTimeoutTimestamp(self, timestampMs: int | dt.datetime) -> None:
        """Time out when the event-time watermark passes ``timestampMs`` (epoch ms)."""
        if self._timeout_conf != GroupStateTimeout.EventTimeTimeout:
            raise RuntimeError("[CANNOT_WITHOUT] Cannot set timeout timestamp without enabling "
                               "event time timeout in applyInPandasWithState.")
        if isinstance(timestampMs, dt.datetime):
            aware = timestampMs if timestampMs.tzinfo else timestampMs.replace(tzinfo=dt.UTC)
            timestampMs = int(aware.timestamp() * 1000)
        if timestampMs <= 0:
            raise ValueError("[VALUE_NOT_POSITIVE] Value for `timestampMs` must be positive, "
                             f"got '{timestampMs}'.")
        if self._watermark_ms != NO_TIMESTAMP and timestampMs < self._watermark_ms:
            raise ValueError(f"[INVALID_TIMEOUT_TIMESTAMP] Timeout timestamp ({timestampMs}) "
                             f"cannot be earlier than the current watermark "
                             f"({self._watermark_ms}).")
        self._timeout_ms = int(timestampMs)

    def getCurrentWatermarkMs(self) -> int:
        """The batch's event-time watermark (epoch ms); needs a watermark in the query."""
        if not self._watermark_present:
            raise RuntimeError("[CANNOT_WITHOUT] Cannot get event time watermark timestamp "
                               "without setting watermark before applyInPandasWithState.")
        return self._watermark_ms

    def getCurrentProcessingTimeMs(self) -> int:
        """The batch's timestamp (epoch ms), the same when a batch runs again."""
        return self._processing_time_ms

    def __str__(self) -> str:
        return f"GroupState({self.get})" if self.exists else "GroupState(<undefined>)"

    def outcome(self, stored_timeout_ms: int) -> StateOutcome:
        """Spark's rule for what is written back after the call."""
        if self._removed and self._timeout_ms == NO_TIMESTAMP:
            return StateOutcome(False, None, NO_TIMESTAMP, False, True)
        changed = self._timeout_ms != stored_timeout_ms
        write = self._updated or self._removed or changed
        value = self._value if self._defined else None
        return StateOutcome(self._defined, value, self._timeout_ms, write, False)


def _python_value(value: Any) -> Any:
    """NumPy and pandas scalars as Python values, as PySpark's ``update`` converts them."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.tolist()
    if hasattr(value, "to_pytimedelta"):
        return value.to_pytimedelta()
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    return value


def user_frames(result: Any, schema: StructType) -> list[pd.DataFrame]:
    """The non-empty DataFrames a user function returned, checked as PySpark does."""
    import pandas as pd

    if isinstance(result, pd.DataFrame) or not isinstance(result, Iterable):
        raise TypeError("[UDF_RETURN_TYPE] Return type of the user-defined function should "
                        f"be iterable of pandas.DataFrame, but is {type(result).__name__}.")
    frames = []
    for frame in result:
        if isinstance(frame, pd.DataFrame) and not (
                len(frame.columns) == len(schema.fields) or (frame.empty and not
                                                             len(frame.columns))):
            raise RuntimeError("[RESULT_COLUMN_SCHEMA_MISMATCH] Number of columns of the "
                               f"returned pandas.DataFrame doesn't match specified schema. "
                               f"Expected: {len(schema.fields)} Actual: {len(frame.columns)}")
        if not (isinstance(frame, pd.DataFrame) and frame.empty):
            frames.append(frame)
    return frames



@compile_plan.register
def _(plan: FlatMapGroupsInPandasWithState, inputs: Bindings,
      ctx: CompileContext) -> pl.LazyFrame:
    """Only a stream keeps group state: a batch query fails when it runs, as in Spark
    (its schema is still known, so ``df.schema`` works)."""
    def fail() -> pl.DataFrame:
        raise UnsupportedOperationException(
            "applyInPandasWithState is unsupported in batch query. Use applyInPandas "
            "instead.", error_class="UNSUPPORTED_OPERATION")

    ctx.plan_columns[plan] = fresh_columns(plan.schema.names)
    return pl.defer(fail, schema=arrow_schema_to_polars(plan.schema.to_arrow_schema()))

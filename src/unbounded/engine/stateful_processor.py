"""``transformWithStateInPandas``'s user-facing API: the processor, its handle, its state.

As PySpark 4.3's ``pyspark.sql.streaming.stateful_processor``: a ``StatefulProcessor``
declares its state variables in ``init(handle)``; value, list and map state hold tuples of
their declared schemas; timers are epoch milliseconds per grouping key. Every call works
on the *implicit key*, the group the operator is calling the processor for.

Here the state of the keys of one batch partition lives in Python objects (``KeyState``)
that the partition's fold (``runtime/stateful/transform_fold.py``, on a driver thread or
in a Ray state actor) reads from and writes back to its columnar stores; nothing is
pickled into the checkpoint.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import polars as pl

from unbounded.engine.context import CompileContext, fresh_columns
from unbounded.engine.dtypes import arrow_schema_to_polars
from unbounded.engine.plans import Bindings, compile_plan
from unbounded.errors import SparkRuntimeException, UnsupportedOperationException
from unbounded.plan.logical import TimeMode, TransformWithStateInPandas
from unbounded.plan.types import DataType, StructField, StructType, parse_ddl_schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NO_EXPIRY", "ExpiredTimerInfo", "HandlePhase", "KeyState", "ListState",
           "MapState", "ProcessorRuntime", "RowProcessor", "StateVariable",
           "StatefulProcessor", "StatefulProcessorHandle", "TimerValues", "ValueState",
           "VariableKind"]

NO_EXPIRY = -1
Stamped = tuple[tuple[Any, ...], int]  # a value and its TTL expiry (epoch ms, -1: none)


class TimerValues:
    """The batch's processing time and watermark in ms (-1 when the time mode has none)."""

    def __init__(self, currentProcessingTimeInMs: int = -1,
                 currentWatermarkInMs: int = -1) -> None:
        self._currentProcessingTimeInMs = currentProcessingTimeInMs
        self._currentWatermarkInMs = currentWatermarkInMs

    def getCurrentProcessingTimeInMs(self) -> int:
        """Processing time of the current batch (epoch ms)."""
        return self._currentProcessingTimeInMs

    def getCurrentWatermarkInMs(self) -> int:
        """Event-time watermark of the current batch (epoch ms)."""
        return self._currentWatermarkInMs


class ExpiredTimerInfo:
    """The expiry time of the timer that fired."""

    def __init__(self, expiryTimeInMs: int = -1) -> None:
        self._expiryTimeInMs = expiryTimeInMs

    def getExpiryTimeInMs(self) -> int:
        """The timer's expiry timestamp (epoch ms)."""
        return self._expiryTimeInMs


class VariableKind(Enum):
    VALUE = "value"
    LIST = "list"
    MAP = "map"


@dataclass(frozen=True)
class StateVariable:
    """A declared state variable: its kind, value schema (map: also key schema), TTL."""

    name: str
    kind: VariableKind
    value_schema: StructType
    key_schema: StructType | None = None
    ttl_ms: int | None = None


class HandlePhase(Enum):
    """What the handle allows: declaring variables (init) or using them (calls)."""

    PRE_INIT = "PRE_INIT"
    INITIALIZED = "INITIALIZED"
    DATA_PROCESSED = "DATA_PROCESSED"
    CLOSED = "CLOSED"


@dataclass
class KeyState:
    """One grouping key's state: each variable's content (``None``: absent) and timers;
    ``dirty`` names the variables (and ``"timers"``) to write back."""

    values: dict[str, Any] = field(default_factory=dict)
    timers: set[int] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)


def _error(error_class: str, message: str) -> SparkRuntimeException:
    return SparkRuntimeException(f"[{error_class}] {message}", error_class=error_class)


def _plain(value: Any) -> Any:
    """NumPy and pandas scalars as Python values, as PySpark normalizes state values."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    if hasattr(value, "to_pytimedelta"):
        return value.to_pytimedelta()
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    return value


def _row(value: Any, schema: StructType, what: str) -> tuple[Any, ...]:
    if value is None or not isinstance(value, (tuple, list)):
        raise TypeError(f"[NOT_TUPLE] {what} must be a tuple of the state schema's fields, "
                        f"got {type(value).__name__}.")
    row = tuple(_plain(v) for v in value)
    if len(row) != len(schema.fields):
        raise ValueError(f"[STATE_SCHEMA_MISMATCH] {what} has {len(row)} values but the "
                         f"schema {schema.simpleString()} has {len(schema.fields)} fields.")
    return row


class ProcessorRuntime:
    """What a handle talks to: the declared variables, the phase, the implicit key and
    the batch's clock. One per processor instance (one per batch partition)."""

    def __init__(self, time_mode: TimeMode, processing_ms: int, watermark_ms: int) -> None:
        self.time_mode = time_mode
        self.processing_ms, self.watermark_ms = processing_ms, watermark_ms
        self.variables: dict[str, StateVariable] = {}
        self.phase = HandlePhase.PRE_INIT
        self.current: KeyState | None = None

    def timer_values(self) -> TimerValues:
        if self.time_mode is TimeMode.NONE:
            return TimerValues()
        return TimerValues(self.processing_ms, self.watermark_ms)

    def declare(self, variable: StateVariable) -> None:
        if self.phase is not HandlePhase.PRE_INIT:
            raise _error("STATEFUL_PROCESSOR_CANNOT_PERFORM_OPERATION_WITH_INVALID_HANDLE_STATE",
                         f"Failed to perform stateful processor operation=get_{variable.kind.value}"
                         f"_state with invalid handle state={self.phase.value}.")
        if variable.name in self.variables:
            raise _error("STATEFUL_PROCESSOR_DUPLICATE_STATE_VARIABLE_DEFINED",
                         f"State variable with name {variable.name} has already been defined "
                         "in the StatefulProcessor.")
        self._check_ttl(variable)
        self.variables[variable.name] = variable

    def _check_ttl(self, variable: StateVariable) -> None:
        if variable.ttl_ms is None:
            return
        if self.time_mode is not TimeMode.PROCESSING_TIME:
            raise _error("STATEFUL_PROCESSOR_INCORRECT_TIME_MODE_TO_ASSIGN_TTL",
                         f"Cannot use TTL for state={variable.name} in "
                         f"timeMode={self.time_mode.value}, use TimeMode.ProcessingTime() "
                         "instead.")
        if variable.ttl_ms <= 0:
            raise _error("STATEFUL_PROCESSOR_TTL_DURATION_MUST_BE_POSITIVE",
                         "TTL duration must be greater than zero for State store "
                         f"operation=get_{variable.kind.value}_state on "
                         f"state={variable.name}.")

    def key_state(self, operation: str) -> KeyState:
        """The implicit key's state; only while the processor handles a key."""
        if self.current is None:
            raise _error("STATEFUL_PROCESSOR_CANNOT_PERFORM_OPERATION_WITH_INVALID_HANDLE_STATE",
                         f"Failed to perform stateful processor operation={operation} with "
                         f"invalid handle state={self.phase.value}.")
        return self.current

    def timers(self, operation: str) -> KeyState:
        if self.time_mode is TimeMode.NONE:
            raise _error("STATEFUL_PROCESSOR_CANNOT_PERFORM_OPERATION_WITH_INVALID_TIME_MODE",
                         f"Failed to perform stateful processor operation={operation} with "
                         f"invalid timeMode={self.time_mode.value}")
        return self.key_state(operation)

    def expires(self, variable: StateVariable) -> int:
        """TTL expiry of a value written now: Spark counts from the batch timestamp."""
        return NO_EXPIRY if variable.ttl_ms is None else self.processing_ms + variable.ttl_ms

    def live(self, stamp: int) -> bool:
        """Spark's rule: a value is expired once the batch timestamp reaches its expiry."""
        return stamp == NO_EXPIRY or self.processing_ms < stamp


class _Variable:
    def __init__(self, runtime: ProcessorRuntime, variable: StateVariable) -> None:
        self._runtime, self._variable = runtime, variable

    def _get(self, operation: str) -> Any:
        return self._runtime.key_state(operation).values.get(self._variable.name)

    def _set(self, operation: str, content: Any) -> None:
        state = self._runtime.key_state(operation)
        state.values[self._variable.name] = content
        state.dirty.add(self._variable.name)

    def _stamp(self, value: Any, what: str) -> Stamped:
        return (_row(value, self._variable.value_schema, what),
                self._runtime.expires(self._variable))


class ValueState(_Variable):
    """One tuple per grouping key."""

    def _value(self) -> tuple[Any, ...] | None:
        stamped: Stamped | None = self._get("value_state_get")
        return stamped[0] if stamped is not None and self._runtime.live(stamped[1]) else None

    def exists(self) -> bool:
        """Whether the key has a (not expired) value."""
        return self._value() is not None

    def get(self) -> tuple[Any, ...] | None:
        """The value, or None."""
        return self._value()

    def update(self, newValue: tuple[Any, ...]) -> None:
        """Replace the value (and restart its TTL)."""
        self._set("value_state_update", self._stamp(newValue, "newValue"))

    def clear(self) -> None:
        """Remove the value."""
        self._set("value_state_clear", None)


class ListState(_Variable):
    """A list of tuples per grouping key; with a TTL each element expires on its own."""

    def _items(self) -> list[Stamped]:
        items: list[Stamped] = self._get("list_state_get") or []
        return [item for item in items if self._runtime.live(item[1])]

    def exists(self) -> bool:
        """Whether the list has (not expired) elements."""
        return bool(self._items())

    def get(self) -> Iterator[tuple[Any, ...]]:
        """The elements, oldest first."""
        return iter([value for value, _ in self._items()])

    def put(self, newState: list[tuple[Any, ...]]) -> None:
        """Replace the list."""
        self._set("list_state_put", [self._stamp(v, "element") for v in newState] or None)

    def appendValue(self, newState: tuple[Any, ...]) -> None:
        """Append one element."""
        self._set("list_state_append", [*self._items(), self._stamp(newState, "newState")])

    def appendList(self, newState: list[tuple[Any, ...]]) -> None:
        """Append elements."""
        added = [self._stamp(v, "element") for v in newState]
        self._set("list_state_append", [*self._items(), *added] or None)

    def clear(self) -> None:
        """Remove the list."""
        self._set("list_state_clear", None)


class MapState(_Variable):
    """A map of key tuples to value tuples per grouping key (TTL per entry)."""

    def _entries(self) -> dict[tuple[Any, ...], Stamped]:
        entries: dict[tuple[Any, ...], Stamped] = self._get("map_state_get") or {}
        return {k: v for k, v in entries.items() if self._runtime.live(v[1])}

    def _key(self, key: Any) -> tuple[Any, ...]:
        assert self._variable.key_schema is not None
        return _row(key, self._variable.key_schema, "key")

    def exists(self) -> bool:
        """Whether the map has (not expired) entries."""
        return bool(self._entries())

    def getValue(self, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The value of ``key``, or None."""
        entry = self._entries().get(self._key(key))
        return entry[0] if entry is not None else None

    def containsKey(self, key: tuple[Any, ...]) -> bool:
        """Whether ``key`` has a value."""
        return self._key(key) in self._entries()

    def updateValue(self, key: tuple[Any, ...], value: tuple[Any, ...]) -> None:
        """Set the value of ``key`` (and restart its TTL)."""
        entries = self._entries()
        entries[self._key(key)] = self._stamp(value, "value")
        self._set("map_state_update", entries)

    def iterator(self) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        """(key, value) pairs."""
        return iter([(k, v[0]) for k, v in self._entries().items()])

    def keys(self) -> Iterator[tuple[Any, ...]]:
        """The keys."""
        return iter(list(self._entries()))

    def values(self) -> Iterator[tuple[Any, ...]]:
        """The values."""
        return iter([v[0] for v in self._entries().values()])

    def removeKey(self, key: tuple[Any, ...]) -> None:
        """Remove ``key``."""
        entries = self._entries()
        entries.pop(self._key(key), None)
        self._set("map_state_remove", entries or None)

    def clear(self) -> None:
        """Remove the map."""
        self._set("map_state_clear", None)


def _struct(schema: StructType | str | DataType) -> StructType:
    if isinstance(schema, str):
        return parse_ddl_schema(schema)
    if isinstance(schema, StructType):
        return schema
    return StructType([StructField("value", schema)])


class StatefulProcessorHandle:
    """What ``init`` gets: declares state variables; in calls, manages the key's timers."""

    def __init__(self, runtime: ProcessorRuntime) -> None:
        self._runtime = runtime

    def getValueState(self, stateName: str, schema: StructType | str,
                      ttlDurationMs: int | None = None) -> ValueState:
        """Declare (in ``init``) a value state of ``schema``, optionally with a TTL."""
        variable = StateVariable(stateName, VariableKind.VALUE, _struct(schema),
                                 ttl_ms=ttlDurationMs)
        self._runtime.declare(variable)
        return ValueState(self._runtime, variable)

    def getListState(self, stateName: str, schema: StructType | str,
                     ttlDurationMs: int | None = None) -> ListState:
        """Declare (in ``init``) a list state of elements of ``schema``."""
        variable = StateVariable(stateName, VariableKind.LIST, _struct(schema),
                                 ttl_ms=ttlDurationMs)
        self._runtime.declare(variable)
        return ListState(self._runtime, variable)

    def getMapState(self, stateName: str, userKeySchema: StructType | str,
                    valueSchema: StructType | str,
                    ttlDurationMs: int | None = None) -> MapState:
        """Declare (in ``init``) a map state from ``userKeySchema`` to ``valueSchema``."""
        variable = StateVariable(stateName, VariableKind.MAP, _struct(valueSchema),
                                 _struct(userKeySchema), ttlDurationMs)
        self._runtime.declare(variable)
        return MapState(self._runtime, variable)

    def registerTimer(self, expiryTimestampMs: int) -> None:
        """Fire ``handleExpiredTimer`` for this key once the time passes ``expiryTimestampMs``."""
        state = self._runtime.timers("register_timer")
        state.timers.add(_epoch_ms(expiryTimestampMs))
        state.dirty.add("timers")

    def deleteTimer(self, expiryTimestampMs: int) -> None:
        """Delete this key's timer at ``expiryTimestampMs`` (absent: nothing happens)."""
        state = self._runtime.timers("delete_timer")
        state.timers.discard(_epoch_ms(expiryTimestampMs))
        state.dirty.add("timers")

    def listTimers(self) -> Iterator[int]:
        """This key's timers (epoch ms), earliest first."""
        return iter(sorted(self._runtime.timers("list_timers").timers))

    def deleteIfExists(self, stateName: str) -> None:
        """Clear ``stateName`` for the current key (Spark purges it for every key)."""
        state = self._runtime.key_state("delete_if_exists")
        if stateName in self._runtime.variables:
            state.values[stateName] = None
            state.dirty.add(stateName)


def _epoch_ms(value: int | dt.datetime) -> int:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(aware.timestamp() * 1000)
    return int(_plain(value))


class StatefulProcessor(ABC):
    """The user's stateful logic for ``transformWithStateInPandas``; subclass it."""

    @abstractmethod
    def init(self, handle: StatefulProcessorHandle) -> None:
        """Declare the state variables (called first, in every batch partition)."""

    @abstractmethod
    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        """Handle a key's new rows; yield output DataFrames."""

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[pd.DataFrame]:
        """Handle a key's timer that fired (default: no output)."""
        return iter([])

    def close(self) -> None:  # noqa: B027  (optional hook, as in PySpark)
        """Called last, after the batch partition's keys."""

    def handleInitialState(  # noqa: B027  (optional hook, as in PySpark)
            self, key: Any, initialState: pd.DataFrame, timerValues: TimerValues) -> None:
        """Seed a key's state from the initial state's rows (first batch only)."""


class RowProcessor(StatefulProcessor):
    """``transformWithState``'s processor: the user's, called with and yielding ``Row``s.

    The operator sees this wrapper and hands the user, as PySpark 4.1+ does, each key's
    rows as an iterator of ``Row`` (values as ``pyarrow``'s ``as_py``: timestamps aware in
    UTC, structs as dicts), the key as a tuple of Python values, and each initial-state
    row on its own; the ``Row``s it yields are matched to the output schema by name.
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.processor.init(handle)

    def handleInputRows(self, key: Any, rows: Iterator[Any],
                        timerValues: TimerValues) -> Iterator[Any]:
        result: Iterator[Any] = self.processor.handleInputRows(key, rows, timerValues)
        return result

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[Any]:
        result: Iterator[Any] = self.processor.handleExpiredTimer(
            key=key, timerValues=timerValues, expiredTimerInfo=expiredTimerInfo)
        return result

    def handleInitialState(self, key: Any, initialState: Any,
                           timerValues: TimerValues) -> None:
        self.processor.handleInitialState(key, initialState, timerValues)

    def close(self) -> None:
        self.processor.close()


@compile_plan.register
def _(plan: TransformWithStateInPandas, inputs: Bindings, ctx: CompileContext) -> pl.LazyFrame:
    """Only a stream runs a processor here: a batch query fails when it runs (its schema
    is still known, so ``df.schema`` works)."""
    def fail() -> pl.DataFrame:
        raise UnsupportedOperationException(
            "transformWithStateInPandas runs on streaming DataFrames only in unbounded. "
            "Read the input with readStream, or use applyInPandas on a batch DataFrame.",
            error_class="UNSUPPORTED_OPERATION")

    ctx.plan_columns[plan] = fresh_columns(plan.schema.names)
    return pl.defer(fail, schema=arrow_schema_to_polars(plan.schema.to_arrow_schema()))

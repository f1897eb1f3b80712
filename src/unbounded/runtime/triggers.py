"""Triggers: when the next micro-batch starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from unbounded.errors import AnalysisException
from unbounded.plan.intervals import parse_interval_ms
from unbounded.sources.base import Offset

__all__ = ["AvailableNow", "Continuous", "Once", "ProcessingTime", "SupportsDataDue", "Trigger",
           "make_trigger"]


@runtime_checkable
class SupportsDataDue(Protocol):
    """A source that knows when its next rows become available (the ``rate`` source: at
    the end of each second since its start), so an idle trigger loop wakes then rather
    than at its next poll, up to a poll interval late."""

    def next_data_due_ms(self, start: Offset | None) -> int:
        """Epoch milliseconds from which ``latest_offset(start)`` is past ``start``."""
        ...


@dataclass(frozen=True)
class ProcessingTime:
    """A batch every ``interval_ms`` (0: as soon as the previous one ends). An overrun
    batch starts the next one at once, as Spark does."""

    interval_ms: int = 0


@dataclass(frozen=True)
class Once:
    """One batch of everything available, ignoring per-trigger limits, then stop."""


@dataclass(frozen=True)
class AvailableNow:
    """Everything available at start, in as many batches as the limits require, then stop."""


@dataclass(frozen=True)
class Continuous:
    interval_ms: int


Trigger = ProcessingTime | Once | AvailableNow | Continuous


def make_trigger(
    processingTime: str | None = None,
    once: bool | None = None,
    continuous: str | None = None,
    availableNow: bool | None = None,
) -> Trigger:
    given = [x for x in (processingTime, once, continuous, availableNow) if x is not None]
    if len(given) != 1:
        raise ValueError(
            "Only one trigger can be set: processingTime=..., once=True, "
            "availableNow=True or continuous=...")
    if processingTime is not None:
        if not isinstance(processingTime, str) or not processingTime.strip():
            raise ValueError(f"Value for processingTime must be a non empty string. "
                             f"Got: {processingTime!r}")
        interval = parse_interval_ms(processingTime)
        if interval < 0:
            raise AnalysisException("The processingTime interval must not be negative.")
        return ProcessingTime(interval)
    if once is not None:
        if once is not True:
            raise ValueError(f"Value for once must be True. Got: {once}")
        return Once()
    if availableNow is not None:
        if availableNow is not True:
            raise ValueError(f"Value for availableNow must be True. Got: {availableNow}")
        return AvailableNow()
    assert continuous is not None
    return Continuous(parse_interval_ms(continuous))

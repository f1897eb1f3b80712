"""An idle trigger loop wakes when a source's next rows are due, not up to a poll
interval later (issue 15: the ``rate`` source's rows of second s are ready at its end)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from unbounded.runtime import microbatch
from unbounded.runtime.microbatch import MicroBatchExecution
from unbounded.runtime.triggers import SupportsDataDue
from unbounded.sources.rate import RateSource

__all__: list[str] = []

START_MS = 1_767_225_600_000


def _rate(start_ms: int = START_MS) -> RateSource:
    source = object.__new__(RateSource)
    source.start_ms, source.rows_per_second, source.num_partitions = start_ms, 1000, 2
    return source


class _Polled:
    """A source that cannot say when its next data comes (a folder, a topic)."""


class _WithTimeouts:
    """An operator with processing-time timeouts (``SupportsTimeouts``)."""

    def timeouts_due(self, now_ms: int) -> bool:
        return False


def _loop(sources: list[Any], committed: list[Any],
          operators: list[Any] | None = None) -> MicroBatchExecution:
    loop = object.__new__(MicroBatchExecution)
    loop.query = SimpleNamespace(sources=sources,  # type: ignore[assignment]
                                 operators=operators or [])
    loop.committed = committed
    return loop


def _now(monkeypatch: pytest.MonkeyPatch, ms: float) -> None:
    monkeypatch.setattr(time, "time", lambda: ms / 1000)


def test_the_rate_source_says_its_next_second_is_due_at_its_end() -> None:
    source = _rate()
    assert isinstance(source, SupportsDataDue)
    assert source.next_data_due_ms(None) == START_MS + 1000
    assert source.next_data_due_ms(7) == START_MS + 8000


def test_the_rate_source_s_offset_moves_once_its_due_time_passed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = _rate()
    due = source.next_data_due_ms(3)
    _now(monkeypatch, due - 1)
    assert source.latest_offset(3) == 3
    _now(monkeypatch, due + microbatch._DUE_MARGIN_MS)
    assert source.latest_offset(3) == 4


def test_an_idle_loop_waits_until_the_rate_source_s_rows_are_due(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = _loop([_rate()], [3])
    _now(monkeypatch, START_MS + 4000 - 4)  # 4 ms before second 4 ends
    assert loop._idle_wait_s() == pytest.approx(0.0045, abs=1e-6)
    _now(monkeypatch, START_MS + 4000 + 2)  # due already: poll at once
    assert loop._idle_wait_s() == 0.0


def test_an_idle_loop_still_polls_at_its_interval_when_the_rows_are_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = _loop([_rate(), _Polled()], [3, None])
    _now(monkeypatch, START_MS + 3200)
    assert loop._idle_wait_s() == microbatch._POLL_DELAY_S
    assert _loop([_Polled()], [None])._idle_wait_s() == microbatch._POLL_DELAY_S


def test_an_idle_loop_sleeps_until_the_rate_source_s_next_second_instead_of_polling(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = _loop([_rate()], [3])
    _now(monkeypatch, START_MS + 3200)  # 800 ms before second 4 ends: no poll before
    assert loop._idle_wait_s() == pytest.approx(0.8005, abs=1e-6)
    _now(monkeypatch, START_MS - 5000)  # a clock set back: still bounded
    assert loop._idle_wait_s() == microbatch._DUE_WAIT_MAX_S


def test_an_idle_loop_polls_while_an_operator_may_time_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = _loop([_rate()], [3], [_WithTimeouts()])
    _now(monkeypatch, START_MS + 3200)
    assert loop._idle_wait_s() == microbatch._POLL_DELAY_S


def _sleeping_loop(monkeypatch: pytest.MonkeyPatch) -> tuple[MicroBatchExecution, Any]:
    """A loop whose idle sleep would last an hour, asleep on its own thread."""
    loop = _loop([_rate()], [3])
    loop.query.wake_idle = threading.Event()  # type: ignore[attr-defined]
    monkeypatch.setattr(loop, "_idle_wait_s", lambda: 3600.0)
    sleeper = threading.Thread(target=loop._idle_sleep, daemon=True)
    sleeper.start()
    return loop, sleeper


def test_a_stop_or_process_all_available_ends_the_idle_sleep_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop, sleeper = _sleeping_loop(monkeypatch)
    loop.query.wake_idle.set()  # what stop() and processAllAvailable() do
    sleeper.join(30)  # bounded: a loop that ignored the event would sleep an hour
    assert not sleeper.is_alive()
    assert not loop.query.wake_idle.is_set()  # cleared for the next sleep

"""GroupState as PySpark 4.3's: values, removal, timeouts and what is written back."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from unbounded.engine.group_state import NO_TIMESTAMP, GroupState, GroupStateTimeout


def state(value=None, conf=GroupStateTimeout.NoTimeout, watermark_ms=NO_TIMESTAMP,
          watermark=False, timed_out=False) -> GroupState:
    return GroupState(value, processing_time_ms=1_000, watermark_ms=watermark_ms,
                      timeout_conf=conf, has_timed_out=timed_out,
                      watermark_present=watermark, n_fields=2)


def test_a_missing_state_has_no_value_and_get_says_so():
    s = state()
    assert (s.exists, s.getOption, str(s)) == (False, None, "GroupState(<undefined>)")
    with pytest.raises(ValueError, match="STATE_NOT_EXISTS"):
        _ = s.get


def test_update_converts_numpy_values_and_checks_the_arity():
    s = state()
    s.update((np.int64(3), np.float64(0.5)))
    assert s.get == (3, 0.5) and type(s.get[0]) is int
    with pytest.raises(ValueError, match="STATE_SCHEMA_MISMATCH"):
        s.update((1,))
    with pytest.raises(TypeError, match="CANNOT_BE_NONE"):
        s.update(None)  # type: ignore[arg-type]


def test_an_unchanged_call_writes_nothing_and_a_cleared_timeout_is_written():
    assert not state((1, 2)).outcome(NO_TIMESTAMP).write
    cleared = state((1, 2), GroupStateTimeout.ProcessingTimeTimeout).outcome(5_000)
    assert (cleared.write, cleared.timeout_ms, cleared.value) == (True, NO_TIMESTAMP, (1, 2))


def test_remove_deletes_unless_a_timeout_is_set_in_the_same_call():
    s = state((1, 2))
    s.remove()
    assert s.outcome(NO_TIMESTAMP).delete
    s = state((1, 2), GroupStateTimeout.ProcessingTimeTimeout)
    s.remove()
    s.setTimeoutDuration(10)
    out = s.outcome(NO_TIMESTAMP)
    assert (out.delete, out.write, out.exists, out.value, out.timeout_ms) == (
        False, True, False, None, 1_010)


def test_timeouts_need_their_conf_and_sane_values():
    with pytest.raises(RuntimeError, match="CANNOT_WITHOUT"):
        state().setTimeoutDuration(10)
    with pytest.raises(RuntimeError, match="CANNOT_WITHOUT"):
        state().setTimeoutTimestamp(10)
    with pytest.raises(ValueError, match="VALUE_NOT_POSITIVE"):
        state(conf=GroupStateTimeout.ProcessingTimeTimeout).setTimeoutDuration(0)
    with pytest.raises(TypeError, match="NOT_EXPECTED_TYPE"):
        state(conf=GroupStateTimeout.ProcessingTimeTimeout).setTimeoutDuration("1 minute")  # type: ignore[arg-type]
    event = state(conf=GroupStateTimeout.EventTimeTimeout, watermark_ms=5_000, watermark=True)
    with pytest.raises(ValueError, match="INVALID_TIMEOUT_TIMESTAMP"):
        event.setTimeoutTimestamp(4_999)
    event.setTimeoutTimestamp(dt.datetime(1970, 1, 1, 0, 0, 6))
    assert event.outcome(NO_TIMESTAMP).timeout_ms == 6_000


def test_the_watermark_is_readable_only_when_the_query_has_one():
    with pytest.raises(RuntimeError, match="setting watermark"):
        state().getCurrentWatermarkMs()
    assert state(watermark_ms=7, watermark=True).getCurrentWatermarkMs() == 7
    assert state().getCurrentProcessingTimeMs() == 1_000
    assert state(timed_out=True).hasTimedOut

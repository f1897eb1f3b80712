"""``GroupState`` and ``GroupStateTimeout`` for ``applyInPandasWithState`` (PySpark's
``pyspark.sql.streaming.state``) and ``transformWithStateInPandas``'s ``StatefulProcessor``
API (``pyspark.sql.streaming.stateful_processor``); ``unbounded.sql.streaming`` is a
module, so they live here."""

from unbounded.engine.group_state import GroupState, GroupStateTimeout
from unbounded.engine.stateful_processor import (
    ExpiredTimerInfo,
    ListState,
    MapState,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
    ValueState,
)

__all__ = ["ExpiredTimerInfo", "GroupState", "GroupStateTimeout", "ListState", "MapState",
           "StatefulProcessor", "StatefulProcessorHandle", "TimerValues", "ValueState"]

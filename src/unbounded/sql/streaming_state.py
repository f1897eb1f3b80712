"""``GroupState`` and ``GroupStateTimeout`` for ``applyInPandasWithState``, as PySpark's
``pyspark.sql.streaming.state`` exports them (``unbounded.sql.streaming`` is a module,
so they live here)."""

from unbounded.engine.group_state import GroupState, GroupStateTimeout

__all__ = ["GroupState", "GroupStateTimeout"]

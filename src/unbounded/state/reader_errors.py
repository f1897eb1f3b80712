"""The state data sources' errors as Spark 4 raises them: ``SparkRuntimeException`` with
its ``STDS_*`` / ``CANNOT_LOAD_STATE_STORE.*`` classes, worded as PySpark 4.3 words them
(the ``SQLSTATE`` suffix left out)."""

from __future__ import annotations

from unbounded.errors import SparkRuntimeException

__all__ = ["conflict_options", "invalid_option", "missing_snapshot", "required_option",
           "snapshot_partition_not_found"]


def invalid_option(option: str, message: str) -> SparkRuntimeException:
    """``STDS_INVALID_OPTION_VALUE.WITH_MESSAGE``.

    >>> str(invalid_option("batchId", "too big"))
    "[STDS_INVALID_OPTION_VALUE.WITH_MESSAGE] Invalid value for source option 'batchId': too big"
    """
    return SparkRuntimeException(
        f"[STDS_INVALID_OPTION_VALUE.WITH_MESSAGE] Invalid value for source option "
        f"'{option}': {message}", error_class="STDS_INVALID_OPTION_VALUE.WITH_MESSAGE")


def required_option(option: str) -> SparkRuntimeException:
    """``STDS_REQUIRED_OPTION_UNSPECIFIED``."""
    return SparkRuntimeException(f"[STDS_REQUIRED_OPTION_UNSPECIFIED] '{option}' must be "
                                 "specified.", error_class="STDS_REQUIRED_OPTION_UNSPECIFIED")


def conflict_options(*options: str) -> SparkRuntimeException:
    """``STDS_CONFLICT_OPTIONS``."""
    listed = ", ".join(f"'{o}'" for o in options)
    return SparkRuntimeException(f"[STDS_CONFLICT_OPTIONS] The options [{listed}] cannot be "
                                 "specified together. Please specify the one.",
                                 error_class="STDS_CONFLICT_OPTIONS")


def missing_snapshot(path: str) -> SparkRuntimeException:
    """``CANNOT_LOAD_STATE_STORE.CANNOT_READ_MISSING_SNAPSHOT_FILE``: a
    ``snapshotStartBatchId`` whose version has no snapshot file."""
    cls = "CANNOT_LOAD_STATE_STORE.CANNOT_READ_MISSING_SNAPSHOT_FILE"
    return SparkRuntimeException(
        f"[{cls}] An error occurred during loading state. Cannot read the snapshot file "
        f"{path}: it does not exist. Pick a snapshotStartBatchId whose state version "
        "(batch id + 1) has a snapshot, or read without snapshotStartBatchId.",
        error_class=cls)


def snapshot_partition_not_found(partition: int, operator: int,
                                 checkpoint: str) -> SparkRuntimeException:
    """``CANNOT_LOAD_STATE_STORE.SNAPSHOT_PARTITION_ID_NOT_FOUND``."""
    cls = "CANNOT_LOAD_STATE_STORE.SNAPSHOT_PARTITION_ID_NOT_FOUND"
    return SparkRuntimeException(
        f"[{cls}] An error occurred during loading state. Partition id {partition} not found "
        f"for operator {operator} at {checkpoint}.", error_class=cls)

"""The one error hierarchy of unbounded.

Every error a user can catch derives from :class:`UnboundedError` and carries a stable
``error_class`` id. PySpark's names are kept where users already catch them, and each class
also inherits the builtin a Python user would expect (``ValueError``, ``OSError``...).
"""

from __future__ import annotations

__all__ = [
    "AnalysisException",
    "ArithmeticException",
    "CheckpointConflictError",
    "CheckpointCorruptError",
    "ConcurrentQueryError",
    "DateTimeException",
    "IllegalArgumentException",
    "KafkaDataLossError",
    "KafkaUnavailableError",
    "MalformedRecordError",
    "MissingFileError",
    "NumberFormatException",
    "ParseException",
    "PythonException",
    "SparkRuntimeException",
    "StreamingQueryException",
    "UnboundedError",
    "UnsupportedOperationException",
]


class UnboundedError(Exception):
    """Root of every error raised by unbounded."""

    error_class: str = "UNBOUNDED_ERROR"

    def __init__(self, message: str, *, error_class: str | None = None) -> None:
        super().__init__(message)
        if error_class is not None:
            self.error_class = error_class

    def getErrorClass(self) -> str:
        return self.error_class

    def getMessage(self) -> str:
        return str(self)


class AnalysisException(UnboundedError, ValueError):
    """A query that cannot run as written: rejected before it starts."""

    error_class = "ANALYSIS_ERROR"


class ParseException(AnalysisException):
    """A SQL expression or DDL string that does not parse."""

    error_class = "PARSE_SYNTAX_ERROR"


class UnsupportedOperationException(AnalysisException):
    """An operation streaming cannot support (an output mode, an operator)."""

    error_class = "UNSUPPORTED_OPERATION"


class SparkRuntimeException(UnboundedError, RuntimeError):
    """A value that fails at run time under ANSI mode (``spark.sql.ansi.enabled``).

    Raised inside a Polars expression, which re-creates it from its message with its own
    plan appended: the constructor cuts that part and reads the error class back from the
    message's ``[CLASS]`` prefix, so users see Spark's message and class only.
    """

    error_class = "SPARK_RUNTIME_ERROR"

    def __init__(self, message: str, *, error_class: str | None = None) -> None:
        message = message.split(_POLARS_CONTEXT, maxsplit=1)[0]
        if error_class is None and message.startswith("[") and "]" in message:
            error_class = message[1:message.index("]")]
        super().__init__(message, error_class=error_class)


_POLARS_CONTEXT = "\n\nThis error occurred in the following expression:"


class ArithmeticException(SparkRuntimeException, ArithmeticError):
    """ANSI mode: an overflow or a division by zero (``ARITHMETIC_OVERFLOW``,
    ``CAST_OVERFLOW``, ``DIVIDE_BY_ZERO``, ``REMAINDER_BY_ZERO``)."""

    error_class = "ARITHMETIC_OVERFLOW"


class NumberFormatException(SparkRuntimeException, ValueError):
    """ANSI mode: a string that is not a number cast to one (``CAST_INVALID_INPUT``)."""

    error_class = "CAST_INVALID_INPUT"


class DateTimeException(SparkRuntimeException, ValueError):
    """ANSI mode: a string that is not a date or timestamp cast to one
    (``CAST_INVALID_INPUT``)."""

    error_class = "CAST_INVALID_INPUT"


class IllegalArgumentException(SparkRuntimeException, ValueError):
    """A function given an argument it cannot take (PySpark's
    ``pyspark.errors.IllegalArgumentException``), e.g. ``ILLEGAL_DAY_OF_WEEK``."""

    error_class = "ILLEGAL_ARGUMENT"


class PythonException(UnboundedError, RuntimeError):
    """User code (a UDF, ``mapInPandas``, ``applyInPandas``) raised or returned the wrong
    thing; the message names the function, the error and, for row UDFs, the input row.
    ``cause`` holds the exception the function raised, if it raised one."""

    error_class = "PYTHON_EXCEPTION"

    def __init__(self, message: str, *, error_class: str | None = None,
                 cause: BaseException | None = None) -> None:
        super().__init__(message, error_class=error_class)
        self.cause = cause


class StreamingQueryException(UnboundedError, RuntimeError):
    """A running query failed; ``cause`` holds the underlying error."""

    error_class = "STREAM_FAILED"

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class MalformedRecordError(UnboundedError, ValueError):
    """A record that does not parse under FAILFAST; names the file and line."""

    error_class = "MALFORMED_RECORD"


class CheckpointCorruptError(UnboundedError, OSError):
    """A checkpoint file that is unreadable, damaged (its checksum does not match) or of an
    unknown version; the message names the file and how to recover."""

    error_class = "CHECKPOINT_CORRUPT"


class MissingFileError(UnboundedError, FileNotFoundError):
    """A file a read needs is gone (Spark's FAILED_READ_FILE.FILE_NOT_EXIST); the option
    or conf ``ignoreMissingFiles`` skips such files instead."""

    error_class = "FAILED_READ_FILE.FILE_NOT_EXIST"


class CheckpointConflictError(UnboundedError, OSError):
    """A checkpoint entry that another writer published first (fencing)."""

    error_class = "CHECKPOINT_CONFLICT"


class ConcurrentQueryError(UnboundedError, RuntimeError):
    """Another run already holds the checkpoint."""

    error_class = "CONCURRENT_QUERY"


class KafkaUnavailableError(UnboundedError, TimeoutError):
    """The broker did not answer within ``kafkaConsumer.pollTimeoutMs``."""

    error_class = "KAFKA_BROKER_UNAVAILABLE"


class KafkaDataLossError(UnboundedError, RuntimeError):
    """Offsets a batch needs are gone from the broker and ``failOnDataLoss`` is true."""

    error_class = "KAFKA_DATA_LOSS"

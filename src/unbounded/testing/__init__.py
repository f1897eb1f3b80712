"""Test support that ships with the library, as Spark's ``testStream`` does.

``stream``: ``MemoryStream`` and the recovery DSL (re-exported here); ``faults``: the named
crash points the batch loop and the sinks pass through; ``broker``: a local Kafka broker
for the tests and the demo; ``postgres``: a private PostgreSQL server on loopback (Debian's
packages, installed when missing) for the PostgreSQL sink's tests and ``make bench``.

The DSL is loaded on first use (module ``__getattr__``): the batch loop imports
``faults``, which runs this file, and start-up must not pay for ``MemoryStream``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unbounded.testing.stream import (
        AddData,
        CheckAnswer,
        CheckLastBatch,
        ExpectFailure,
        MemoryStream,
        ProcessAllAvailable,
        StartStream,
        StopStream,
        run_stream_test,
    )

__all__ = [
    "AddData",
    "CheckAnswer",
    "CheckLastBatch",
    "ExpectFailure",
    "MemoryStream",
    "ProcessAllAvailable",
    "StartStream",
    "StopStream",
    "run_stream_test",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from unbounded.testing import stream

        return getattr(stream, name)
    raise AttributeError(f"module 'unbounded.testing' has no attribute {name!r}")

"""What a query sees when Ray gives up on a task or an actor call: the task's own error
(a UDF's exception, a source's), with a note naming the attempts, not Ray's wrapper."""

from __future__ import annotations

from typing import NoReturn

from ray.exceptions import RayError, RayTaskError

__all__ = ["failed_note", "raise_own", "raise_surfaced"]


def failed_note(max_failures: int, what: str = "partition task") -> str:
    return (f"The {what} failed {max_failures} time(s) "
            f"(spark.task.maxFailures={max_failures}).")


def raise_own(err: RayTaskError) -> NoReturn:
    """Raise the exception the remote code raised (caused by Ray's wrapper): a call Ray
    does not retry (an actor's method) failed once, so no note counts attempts."""
    if isinstance(err.cause, BaseException):
        raise err.cause from err
    raise err


def raise_surfaced(err: RayError, max_failures: int, what: str = "partition task"
                   ) -> NoReturn:
    """Raise, for ``err``, a task's own exception (caused by Ray's wrapper), else Ray's
    error itself (a worker or node that died), each with the note."""
    err_cause = err.cause if isinstance(err, RayTaskError) else None
    if isinstance(err_cause, BaseException):
        err_cause.add_note(failed_note(max_failures, what))
        raise err_cause from err
    err.add_note(failed_note(max_failures, what))
    raise err


"""What a run tells the world about itself: the hook the session's listeners hang on.

The runtime knows nothing of listeners, metrics or logs (they live in ``observe/``, beside
it); a run only calls these methods. Each must return quickly and never raise: they are
called on the query's own thread, between batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["NO_EVENTS", "NoEvents", "QueryEvents"]


class QueryEvents(Protocol):
    """A run's lifecycle, in order: ``started``, then ``progressed``/``idle`` any number of
    times, then ``terminated`` exactly once (``error`` None for a clean stop)."""

    def started(self, query_id: str, run_id: str, name: str | None, timestamp: str,
                restarted: bool) -> None: ...

    def progressed(self, progress: Mapping[str, Any]) -> None: ...

    def idle(self, query_id: str, run_id: str, timestamp: str) -> None: ...

    def terminated(self, query_id: str, run_id: str, error: BaseException | None) -> None: ...


class NoEvents:
    """Nobody is listening (a run started without a session, e.g. in unit tests)."""

    def started(self, query_id: str, run_id: str, name: str | None, timestamp: str,
                restarted: bool) -> None:
        return None

    def progressed(self, progress: Mapping[str, Any]) -> None:
        return None

    def idle(self, query_id: str, run_id: str, timestamp: str) -> None:
        return None

    def terminated(self, query_id: str, run_id: str, error: BaseException | None) -> None:
        return None


NO_EVENTS = NoEvents()

"""Watching queries: listeners, Prometheus metrics, JSON logs and the session's HTTP server.

Sits beside ``runtime`` (it never imports it): a run reports through
``runtime.events.QueryEvents``, which ``observe.hub.QueryObserver`` implements.
``observe.metrics.StreamingMetrics`` is not re-exported here: it imports prometheus_client,
which only a session with metrics on needs (start-up is measured, issue 15).
"""

from unbounded.observe.hub import QueryObserver, SessionHub
from unbounded.observe.listener import (
    ListenerBus,
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)
from unbounded.observe.server import Response, UiServer

__all__ = [
    "ListenerBus",
    "QueryIdleEvent",
    "QueryObserver",
    "QueryProgressEvent",
    "QueryStartedEvent",
    "QueryTerminatedEvent",
    "Response",
    "SessionHub",
    "StreamingQueryListener",
    "UiServer",
]

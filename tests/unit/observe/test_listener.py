from __future__ import annotations

import threading
import uuid

from unbounded.observe.listener import (
    ListenerBus,
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)

QID, RID = uuid.uuid4(), uuid.uuid4()


class Names(StreamingQueryListener):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        self.seen.append(f"start {event.name}")

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        self.seen.append(f"progress {event.progress['batchId']}")

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        self.seen.append("idle")

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        self.seen.append(f"end {event.exception}")


def test_events_reach_each_listener_in_posting_order():
    bus, a, b = ListenerBus(), Names(), Names()
    bus.add(a)
    bus.add(b)
    bus.post(QueryStartedEvent(QID, RID, "q", "t"))
    for i in range(50):
        bus.post(QueryProgressEvent({"batchId": i}))
    bus.post(QueryIdleEvent(QID, RID, "t"))
    bus.post(QueryTerminatedEvent(QID, RID, None))
    assert bus.wait_until_empty(10)
    expected = ["start q", *(f"progress {i}" for i in range(50)), "idle", "end None"]
    assert a.seen == expected and b.seen == expected
    bus.stop()


def test_a_listener_error_does_not_keep_the_event_from_the_next_listener():
    class Raises(Names):
        def onQueryStarted(self, event: QueryStartedEvent) -> None:
            raise ValueError("boom")

    bus, bad, good = ListenerBus(), Raises(), Names()
    bus.add(bad)
    bus.add(good)
    bus.post(QueryStartedEvent(QID, RID, "q", "t"))
    bus.post(QueryTerminatedEvent(QID, RID, "trace"))
    assert bus.wait_until_empty(10)
    assert good.seen == ["start q", "end trace"] and bad.seen == ["end trace"]
    bus.stop()


def test_post_never_blocks_and_counts_what_a_full_queue_drops():
    gate = threading.Event()

    class Blocks(Names):
        def onQueryProgress(self, event: QueryProgressEvent) -> None:
            gate.wait(30)
            super().onQueryProgress(event)

    bus, slow = ListenerBus(capacity=3), Blocks()
    bus.add(slow)
    bus.post(QueryProgressEvent({"batchId": 0}))
    while bus._queue.qsize():  # the dispatcher took event 0 and waits in the listener
        threading.Event().wait(0.01)
    for i in range(1, 11):
        bus.post(QueryProgressEvent({"batchId": i}))
    assert bus.dropped == 7
    gate.set()
    assert bus.wait_until_empty(10)
    assert slow.seen == ["progress 0", "progress 1", "progress 2", "progress 3"]
    bus.stop()


def test_without_listeners_nothing_is_queued_or_dropped():
    bus = ListenerBus(capacity=1)
    for i in range(5):
        bus.post(QueryProgressEvent({"batchId": i}))
    assert bus.dropped == 0 and bus._queue.qsize() == 0

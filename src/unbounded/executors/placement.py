"""Where a batch's partition tasks run: near their data, where an executor can tell.

"Near" on a cluster whose nodes all see every file (one machine, a shared file system,
object storage) cannot mean "the node whose disk holds the file", so it means what does
pay off there:

- a stream partition (a Kafka topic-partition) goes back to the node that read it last,
  so its consumer's fetch session, connections and page cache stay warm on one node
  (cache affinity, as Spark's Kafka source prefers the executor that cached the
  partition's consumer);
- a file goes to a stable node chosen by its path's hash over the live nodes
  (rendezvous hashing: removing a node moves only the files it had), so a file read
  again (a retry, a restart, a second query over the same folder) finds its pages in
  that node's cache.

No node takes more than its share of a batch's tasks (its CPUs over the cluster's), so
the preference never serialises a batch onto one node; the executor asks for the node
softly, so a node that is gone never blocks a task (``executors/ray.py``).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import assert_never

from unbounded.executors.base import Locality, LocalityKind

__all__ = ["NodePlacement", "PlacementRecord"]

_RECORDS_KEPT = 10_000  # recent decisions, for tests and the debug log


@dataclass(frozen=True)
class PlacementRecord:
    """One task's placement: the node asked for and the node it ran on (they differ
    when the node asked for was gone, which soft affinity allows)."""

    key: str
    kind: LocalityKind
    asked: str
    ran: str


def _score(key: str, node: str) -> int:
    """Rendezvous weight of ``node`` for ``key``; stable across processes and runs."""
    digest = hashlib.blake2b(f"{key}\0{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _caps(nodes: Mapping[str, float], tasks: int) -> dict[str, int]:
    """Each node's most tasks of a batch: its CPU share of ``tasks``, rounded up."""
    total = sum(nodes.values()) or float(len(nodes))
    return {n: max(1, math.ceil(tasks * (cpus or 1.0) / total)) for n, cpus in nodes.items()}


class NodePlacement:
    """Chooses nodes for a batch's tasks and remembers where stream partitions ran.

    Invariants: a node is chosen only from ``nodes`` (the live ones with CPUs); with the
    same live nodes, the same keys in the same batch get the same nodes again; no node
    gets more than its CPU share of one batch.
    """

    def __init__(self) -> None:
        self._last: dict[str, str] = {}  # stream partition -> the node that read it last
        self._lock = threading.Lock()
        self.records: deque[PlacementRecord] = deque(maxlen=_RECORDS_KEPT)

    def assign(self, localities: Sequence[Locality | None], nodes: Mapping[str, float],
               ) -> list[str | None]:
        """A node for each task (None: no preference, the executor spreads it)."""
        if not nodes:
            return [None] * len(localities)
        room = _caps(nodes, sum(1 for loc in localities if loc is not None))
        return [None if loc is None else self._choose(loc, nodes, room)
                for loc in localities]

    def _choose(self, locality: Locality, nodes: Mapping[str, float], room: dict[str, int],
                ) -> str:
        for node in self._preferred(locality, nodes):
            if room[node] > 0:
                room[node] -= 1
                return node
        raise AssertionError("the caps leave room for every task")  # sum(room) >= tasks

    def _preferred(self, locality: Locality, nodes: Mapping[str, float]) -> list[str]:
        ranked = sorted(nodes, key=lambda n: _score(locality.key, n), reverse=True)
        match locality.kind:
            case LocalityKind.STREAM_PARTITION:
                with self._lock:
                    last = self._last.get(locality.key)
                if last is not None and last in nodes:
                    return [last, *(n for n in ranked if n != last)]
                return ranked
            case LocalityKind.FILE:
                return ranked
            case _:
                assert_never(locality.kind)

    def ran(self, locality: Locality, asked: str, node: str) -> None:
        """Record that the task asked for ``asked`` ran on ``node``."""
        with self._lock:
            if locality.kind is LocalityKind.STREAM_PARTITION:
                self._last[locality.key] = node
            self.records.append(PlacementRecord(locality.key, locality.kind, asked, node))

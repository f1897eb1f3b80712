"""The driver's side of speculation, with Ray's calls stood in for: when both copies of
a task are ready in the same wait, the first settles the task and the second is skipped
(it used to fail the batch with StopIteration, seen on the 3-node cluster)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from unbounded.executors import ray as ray_executor
from unbounded.executors.speculation import SpeculationConf


class _FakeRay:
    """ray.wait returns every pending ref at once; ray.get the ref's value."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def wait(self, pending, num_returns, timeout):
        return list(pending), []

    def get(self, ref):
        return ray_executor._Timed(value=ref.split("#")[0], seconds=0.01, node="n1")

    def cancel(self, ref, force=False):
        self.cancelled.append(ref)


def test_two_copies_ready_in_one_wait_give_one_result(monkeypatch):
    fake = _FakeRay()
    monkeypatch.setattr(ray_executor, "ray", fake)
    launched: list[str] = []

    def launch(index: int, first: bool = True) -> str:
        ref = f"item{index}#copy{sum(r.startswith(f'item{index}#') for r in launched)}"
        launched.append(ref)
        return ref

    settled: list[tuple[int, str]] = []
    results = ray_executor._SpeculativeResults(launch, 2, 4, SpeculationConf(enabled=True),
                                               lambda i, t: settled.append((i, t.value)))
    results._copies[0].append(launch(0))  # a speculative copy of item 0, both finished
    assert results.result() == ["item0", "item1"]
    assert launched == ["item0#copy0", "item1#copy0", "item0#copy1"]
    assert sorted(settled) == [(0, "item0"), (1, "item1")]  # each item's winner, once

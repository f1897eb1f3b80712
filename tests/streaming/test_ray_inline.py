"""Partition tasks and state actors return values up to 1 MiB inline, in the reply to the
driver, not through Ray's object store (``executors/ray_hosts.py``: ``WORKER_ENV``): a
batch's partial rows then skip the store's pull on the critical path (issue 13's
per-batch overhead)."""

from __future__ import annotations

import functools

import pytest

from ray_fixtures import (
    HAS_RAY,
    SKIP_REASON,
    ray_cluster_fixture,  # noqa: F401
    ray_cluster_module_fixture,  # noqa: F401
)

pytestmark = pytest.mark.skipif(not HAS_RAY, reason=SKIP_REASON)

_BIG = 500_000  # over Ray's default 100 KB, under our 1 MiB
_HUGE = 2 * 1024 * 1024  # over both: still through the object store


def _in_object_store(ref: object) -> bool:
    """True when a copy of the object lives in some node's object store (Ray reports no
    node for a value held inline by its owner)."""
    import ray.experimental

    return bool(ray.experimental.get_object_locations([ref])[ref]["node_ids"])


@pytest.mark.usefixtures("ray_cluster")
def test_a_task_result_under_a_mebibyte_returns_inline_and_a_larger_one_through_the_store():
    import ray

    from unbounded.executors.base import ShippableTask
    from unbounded.executors.ray import RayExecutor

    executor = RayExecutor(None, 1, 1)
    try:
        pending = executor.map_async(ShippableTask(bytes), [_BIG, _HUGE])
        refs = pending._refs  # type: ignore[attr-defined]
        values = [t.value for t in ray.get(refs)]
        assert values == [bytes(_BIG), bytes(_HUGE)]
        assert [_in_object_store(r) for r in refs] == [False, True]
    finally:
        executor.shutdown()


@pytest.mark.usefixtures("ray_cluster")
def test_a_state_actor_result_under_a_mebibyte_returns_inline():
    import ray

    from unbounded.executors.base import HostCall
    from unbounded.executors.ray_hosts import HostPool

    pool = HostPool(1)
    try:
        hosts = pool.hosts(1)
        call = HostCall(0, "big", functools.partial(bytes, _BIG), bytes)
        ref = hosts._send(0, [call])  # the ref RayHosts.map waits on
        assert ray.get(ref) == [bytes(_BIG)]
        assert not _in_object_store(ref)
        assert hosts.map([call]) == [bytes(_BIG)]
    finally:
        pool.shutdown()

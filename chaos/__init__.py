"""The chaos suite of issue 10: ``make chaos`` = ``python -m chaos``.

Seeded workloads run as real query processes under crashes, file-system faults, damaged
checkpoint files, network faults between the engine and the broker, paused processes and
clock jumps; committed output is compared with a batch oracle as a multiset. A fast slice
runs inside ``make test`` (tests/streaming/test_chaos_fast.py).
"""

__all__: list[str] = []

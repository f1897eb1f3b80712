"""The benchmark suite run by ``make bench`` (``python -m bench``).

One module per workload (``throughput``, ``windowed``, ``state_restore``, ``kafka``), the
shared harness in ``harness``, the command line in ``__main__``.
"""

__all__: list[str] = []

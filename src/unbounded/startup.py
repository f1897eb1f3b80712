"""What loading the package does to be quick (start-up is a measured figure, issue 15).

Stdlib only and below every layer: ``unbounded.sql``'s ``__init__`` uses it before it
imports anything else.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["OPENBLAS_SPIN", "collector_paused", "loading"]

# OpenBLAS (numpy's BLAS; pyarrow imports numpy) starts a worker thread per extra core
# when it loads, and each spins 2**28 cycles (~0.1 s) waiting for work before it sleeps:
# 40-70 ms of CPU beside a 0.3 s start on 2 cores, competing with the import. 2**20
# cycles (~0.3 ms) still keeps the workers hot between back-to-back BLAS calls.
OPENBLAS_SPIN = ("OPENBLAS_THREAD_TIMEOUT", "20")


@contextmanager
def loading() -> Iterator[None]:
    """What the package's first import does to be quick: the collector is paused
    (``collector_paused``) and, when numpy is not loaded yet, OpenBLAS's spin is
    shortened (``OPENBLAS_SPIN``, a default: a value the environment sets wins; child
    processes inherit it, as PySpark's workers inherit its ``OMP_NUM_THREADS``)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault(*OPENBLAS_SPIN)
    with collector_paused():
        yield


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, then restore its state.

    Loading the API allocates tens of thousands of objects that live as long as the
    process (the modules, classes and functions of Polars, pyarrow, numpy and ours).
    The ~150 collections their allocation triggers scan them and find next to no
    garbage: about a tenth of the import's CPU time. The block's objects then go to the
    oldest generation unscanned (``_age_unscanned``); cycles made meanwhile are freed by
    the next full collection. A collector the caller had turned off stays off.

    >>> import gc
    >>> with collector_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _age_unscanned()
            gc.enable()


def _age_unscanned() -> None:
    """Move every tracked object to the oldest generation, unscanned.

    Left in the youngest, the block's objects would all be scanned by the first
    collection after it (15-40 ms at start-up, a tenth of the import); in the oldest,
    full collections still scan them, so cyclic garbage among them is still freed.
    ``freeze`` then ``unfreeze`` is that move; skipped when the caller froze objects
    of their own, which ``unfreeze`` would release.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()

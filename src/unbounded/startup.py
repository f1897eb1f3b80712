"""What loading the package does to be quick (start-up is a measured figure, issue 15).

Stdlib only and below every layer: ``unbounded.sql``'s ``__init__`` uses it before it
imports anything else.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, then restore its state.

    Loading the API allocates tens of thousands of objects that live as long as the
    process (the modules, classes and functions of Polars, pyarrow, numpy and ours).
    The ~150 collections their allocation triggers scan them and find next to no
    garbage: about a tenth of the import's CPU time. Cycles made meanwhile are collected
    by the first collection after the block. A collector the caller had turned off stays
    off.

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
            gc.enable()

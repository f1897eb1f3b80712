"""Tools that open a stopped query's checkpoint: inspect, validate, rewind (issue 11).

They read and move files only through the engine's own readers (``checkpoint.logs``,
``state.files``, ``files.manifest``, ``sources.files``), so a tool never disagrees with a
restart about what a file means. ``unbounded.cli`` renders what they return.
"""

__all__: list[str] = []

"""The checkpoint: atomic files, the offset and commit logs, the run lock."""

__all__: list[str] = []

"""Runs streaming queries: the micro-batch loop, triggers, progress."""

__all__: list[str] = []

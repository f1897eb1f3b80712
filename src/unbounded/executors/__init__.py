"""Executors run a batch's partition tasks: locally on threads, or on Ray."""

__all__: list[str] = []

"""Stateful streaming operators: aggregation and deduplication over versioned state."""

__all__: list[str] = []

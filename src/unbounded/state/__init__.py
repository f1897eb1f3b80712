"""Versioned state stores for stateful operators."""

__all__: list[str] = []

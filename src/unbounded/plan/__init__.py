"""Immutable plan and expression nodes, the SQL parser and the analyzer."""

__all__: list[str] = []

"""Compiles plans and expressions to a vectorised backend (Polars on Arrow data)."""

__all__: list[str] = []

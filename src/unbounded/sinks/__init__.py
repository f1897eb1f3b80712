"""Streaming sinks: the contract in ``base`` and one module per format."""

__all__: list[str] = []

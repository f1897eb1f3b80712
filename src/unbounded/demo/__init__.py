"""``make demo``: pipelines killed with SIGKILL mid-run, restarted, and proven exactly-once."""

__all__: list[str] = []

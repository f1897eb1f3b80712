"""The ``unbounded`` command: run the demo, or look inside a checkpoint."""

from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["main"]


def _inspect(checkpoint: str) -> int:
    from rich.console import Console
    from rich.table import Table

    from unbounded.checkpoint.logs import CommitLog, OffsetLog, QueryMetadata

    meta = QueryMetadata.read(checkpoint)
    if meta is None:
        print(f"{checkpoint} is not a checkpoint (no metadata file)", file=sys.stderr)
        return 2
    console = Console()
    console.print(f"query id {meta.id}; sources {meta.sources}; sink {meta.sink}")
    offsets = OffsetLog(os.path.join(checkpoint, "offsets"))
    commits = set(CommitLog(os.path.join(checkpoint, "commits")).batch_ids())
    table = Table("batch", "committed", "watermark ms", "timestamp ms", "offsets")
    for batch_id in offsets.batch_ids():
        entry = offsets.get(batch_id)
        table.add_row(str(batch_id), "yes" if batch_id in commits else "NO",
                      str(entry.batch_watermark_ms), str(entry.batch_timestamp_ms),
                      json.dumps(entry.offsets))
    console.print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unbounded")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the kill-and-restart exactly-once demo")
    inspect = sub.add_parser("inspect", help="list a checkpoint's batches and offsets")
    inspect.add_argument("checkpoint")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from unbounded.demo.__main__ import main as demo_main

        return demo_main([])
    return _inspect(args.checkpoint)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m unbounded.demo``: both demo pipelines, or one job (used by the demo)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from rich.console import Console

from unbounded.demo import files, kafka

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unbounded.demo")
    parser.add_argument("--workdir", default="demo-output")
    sub = parser.add_subparsers(dest="command")
    fjob = sub.add_parser("files-job", help="run the file pipeline's query once")
    fjob.add_argument("--input", required=True)
    fjob.add_argument("--output", required=True)
    fjob.add_argument("--checkpoint", required=True)
    fjob.add_argument("--files-per-trigger", type=int, default=2)
    kjob = sub.add_parser("kafka-job", help="run the Kafka pipeline's query once")
    kjob.add_argument("--bootstrap", required=True)
    kjob.add_argument("--topic", required=True)
    kjob.add_argument("--output", required=True)
    kjob.add_argument("--checkpoint", required=True)
    args = parser.parse_args(argv)
    if args.command == "files-job":
        files.run_job(args.input, args.output, args.checkpoint, args.files_per_trigger)
        return 0
    if args.command == "kafka-job":
        kafka.run_job(args.bootstrap, args.topic, args.output, args.checkpoint)
        return 0
    console = Console()
    started = time.monotonic()
    workdir = os.path.abspath(args.workdir)
    ok = files.run_demo(console, os.path.join(workdir, "files"))
    ok = kafka.run_demo(console, os.path.join(workdir, "kafka")) and ok
    console.print(f"{'[green]all proofs pass' if ok else '[red]a proof failed'}[/] in "
                  f"{time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``unbounded`` command: run the demo, open a stopped query's checkpoint, or serve
the streaming UI of this machine's queries (``unbounded ui``, see observe/ui_viewer.py).

``unbounded checkpoint inspect|validate|rewind DIR`` (``unbounded inspect DIR`` is the
older spelling of ``checkpoint inspect``). Humans get rich tables with ISO times;
``--json`` prints one JSON document for scripts. Exit codes: 0 done (``validate``: the
checkpoint is sound), 1 problems found or the action refused, 2 not a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from typing import Any

from rich.console import Console
from rich.table import Table

from unbounded.errors import CheckpointCorruptError, ConcurrentQueryError
from unbounded.tools.inspect import CheckpointReport, NotACheckpointError, iso_ms
from unbounded.tools.rewind import RewindPlan, RewindRefusedError

__all__ = ["main"]

_NOT_A_CHECKPOINT = 2


def _console() -> Console:
    return Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 200)


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=1, default=str))


# ---- inspect ---------------------------------------------------------------------------
def _batch_table(report: CheckpointReport) -> Table:
    table = Table("batch", "committed", "timestamp", "watermark",
                  *[f"offset {i} ({s})" for i, s in enumerate(report.sources)],
                  title="batches")
    for b in report.batches:
        cells = [json.dumps(o) for o in b.offsets] if b.error is None \
            else [f"DAMAGED: {b.error}"]
        table.add_row(str(b.batch_id), "yes" if b.committed else "NO",
                      iso_ms(b.timestamp_ms) or "", iso_ms(b.watermark_ms) or "", *cells)
    return table


def _state_table(report: CheckpointReport) -> Table:
    table = Table("operator", "partition", "store", "version", "deltas", "snapshots",
                  "bytes", title="state")
    for op in report.operators:
        for s in op.stores:
            deltas = f"{s.delta_versions[0]}-{s.delta_versions[-1]} ({len(s.delta_versions)})" \
                if s.delta_versions else "-"
            table.add_row(str(op.operator_id), str(s.partition_id), s.store_name or "-",
                          str(s.latest_version), deltas,
                          ", ".join(map(str, s.snapshot_versions)) or "-", str(s.size_bytes))
    return table


def _print_header(console: Console, report: CheckpointReport) -> None:
    console.print(f"checkpoint {report.path}", markup=False)
    console.print(f"query id {report.query_id}; sources {report.sources}; sink {report.sink}",
                  markup=False)
    console.print(f"fixed configuration {json.dumps(report.fixed_conf)}", markup=False)
    console.print(f"last committed batch {report.last_committed}; next batch watermark "
                  f"{iso_ms(report.watermark_ms)}", markup=False)


def _print_sink(console: Console, report: CheckpointReport) -> None:
    sink = report.sink_manifest
    if sink is None:
        return
    ids = f"{sink.batch_ids[0]}-{sink.batch_ids[-1]}" if sink.batch_ids else "none"
    console.print(f"sink manifest {sink.path}: batches {ids}; {sink.num_files} files, "
                  f"{sink.size_bytes} bytes" + (f"; DAMAGED: {sink.error}" if sink.error else ""),
                  markup=False)


def _inspect(args: argparse.Namespace) -> int:
    from unbounded.tools.inspect import inspect_checkpoint

    report = inspect_checkpoint(args.checkpoint, args.sink)
    if args.json:
        _print_json(report.to_json())
        return 0
    console = _console()
    _print_header(console, report)
    console.print(_batch_table(report))
    if report.operators:
        console.print(_state_table(report))
    _print_sink(console, report)
    return 0


# ---- validate --------------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> int:
    from unbounded.tools.validate import validate_checkpoint

    problems = validate_checkpoint(args.checkpoint, args.sink)
    if args.json:
        _print_json({"sound": not problems,
                     "problems": [{"file": p.file, "problem": p.message} for p in problems]})
        return 1 if problems else 0
    if not problems:
        print(f"{args.checkpoint}: sound")
        return 0
    print(f"{args.checkpoint}: {len(problems)} problem(s)")
    for p in problems:
        print(f"{p.file}: {p.message}")
    return 1


# ---- rewind ----------------------------------------------------------------------------
def _describe(plan: RewindPlan) -> list[str]:
    lines = [f"Rewind {plan.checkpoint} so that its next run starts at batch {plan.to_batch}.",
             f"Set aside into {plan.aside}:"]
    for kind, what in (("offsets", "offset log entries"), ("commits", "commit log entries"),
                       ("state", "state files"), ("manifest", "file sink manifest files")):
        lines.append(f"  {plan.count(kind)} {what} (with checksum files)")
    return lines + plan.notes


def _confirmed() -> bool:
    print("Proceed? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _rewind(args: argparse.Namespace) -> int:
    from unbounded.tools.rewind import apply_rewind, locked_checkpoint, plan_rewind

    with locked_checkpoint(args.checkpoint):
        plan = plan_rewind(args.checkpoint, args.to, args.sink)
        out = sys.stderr if args.json else sys.stdout
        print("\n".join(_describe(plan)), file=out)
        if args.dry_run:
            if args.json:
                _print_json(plan.to_json())
            return 0
        if not args.yes and not _confirmed():
            print("Not rewound.", file=sys.stderr)
            return 1
        apply_rewind(plan)
    if args.json:
        _print_json(plan.to_json())
    else:
        print(f"Done: {plan.count('data')} data files set aside as well; the next run starts "
              f"at batch {plan.to_batch}. {plan.aside}/rewind.json lists every move.")
    return 0


# ---- ui --------------------------------------------------------------------------------
def _ui(args: argparse.Namespace) -> int:
    import threading
    from pathlib import Path

    from unbounded.observe.ui import API_PATH, LIST_PATH
    from unbounded.observe.ui_viewer import ViewerDocuments, serve_viewer
    from unbounded.tools.history import checkpoint_document, checkpoint_documents

    for path in args.checkpoint:
        checkpoint_document(path)  # a wrong folder is named now, not on every page load
    docs = ViewerDocuments(args.run_dir and Path(args.run_dir),
                           lambda: checkpoint_documents(args.checkpoint))
    server = serve_viewer(args.host, args.port, docs)
    print(f"unbounded ui: {server.url}{LIST_PATH}/ (JSON: {server.url}{API_PATH}); "
          "Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def _ui_parser(sub: Any) -> None:
    ui = sub.add_parser("ui", help="serve the streaming UI of this machine's queries")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=4040, help="first port to try (0: any)")
    ui.add_argument("--checkpoint", action="append", default=[], metavar="DIR",
                    help="also show the history of the stopped query of DIR (repeatable)")
    ui.add_argument("--run-dir", metavar="DIR",
                    help="where sessions publish status files (default: $UNBOUNDED_UI_DIR, "
                         "$XDG_RUNTIME_DIR/unbounded-ui or <tmp>/unbounded-ui-<uid>)")


# ---- arguments -------------------------------------------------------------------------
def _version() -> str:
    try:
        return metadata.version("unbounded")
    except metadata.PackageNotFoundError:
        return "unknown"


def _add_reader(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument("checkpoint")
    parser.add_argument("--sink", metavar="PATH",
                        help="the output folder of the query's file sink (its manifest)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def _checkpoint_parser(sub: Any) -> None:
    group = sub.add_parser("checkpoint", help="open a stopped query's checkpoint")
    tools = group.add_subparsers(dest="tool", required=True)
    _add_reader(tools, "inspect", "batches, offsets, commits, watermark, state, sink manifest")
    _add_reader(tools, "validate", "check every file; exit 0 only when the checkpoint is sound")
    rewind = _add_reader(tools, "rewind", "roll the query back so its next run starts at N")
    rewind.add_argument("--to", type=int, required=True, metavar="N")
    rewind.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rewind.add_argument("--dry-run", action="store_true", help="only show what would move")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unbounded")
    parser.add_argument("--version", action="version", version=f"unbounded {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the kill-and-restart exactly-once demo")
    _add_reader(sub, "inspect", "the same as 'checkpoint inspect'")
    _checkpoint_parser(sub)
    _ui_parser(sub)
    return parser


_TOOLS = {"inspect": _inspect, "validate": _validate, "rewind": _rewind, "ui": _ui}


def _run_tool(args: argparse.Namespace) -> int:
    tool = _TOOLS[args.command if args.command in ("inspect", "ui") else args.tool]
    try:
        return tool(args)
    except NotACheckpointError as e:
        print(str(e), file=sys.stderr)
        return _NOT_A_CHECKPOINT
    except (RewindRefusedError, ConcurrentQueryError, CheckpointCorruptError) as e:
        print(f"Refused: {e}" if isinstance(e, RewindRefusedError) else str(e),
              file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from unbounded.demo.__main__ import main as demo_main

        return demo_main([])
    return _run_tool(args)


if __name__ == "__main__":
    sys.exit(main())

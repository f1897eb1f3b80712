"""``make chaos`` = ``python -m chaos``: run the scenarios, print the table.

    python -m chaos                       # every scenario, a random seed (printed)
    python -m chaos --seed 1234           # repeat a run exactly
    python -m chaos --only "corrupt files" --sink file
    python -m chaos --source kafka --query windowed

Exits 1 when any row lost, duplicated or silently changed output.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time

from chaos import scenarios as sc
from chaos.corruption import corruption
from chaos.kafka import kafka_broker_pause, kafka_commit_cuts, kafka_network, on_broker
from chaos.pauses import paused_run
from chaos.report import Row, render

__all__ = ["MATRIX", "main"]

SCENARIOS: dict[str, sc.Scenario] = {
    "crash points": sc.crash_points, "random SIGKILL": sc.random_kills,
    "ENOSPC/EIO/EROFS": sc.fs_faults, "power loss": sc.power_loss,
    "power loss in sink data": sc.power_loss_data,
    "power loss in Delta commit": sc.power_loss_delta,
    "delayed close": sc.delayed_close, "stray temp files": sc.stray_temps,
    "corrupt files": corruption, "paused run": paused_run, "clock jumps": sc.clock_jumps,
    "network faults": lambda _s, q, seed, **kw: kafka_network(seed, query=q, **kw),
    "cut at txn commit": lambda _s, q, seed, **kw: kafka_commit_cuts(seed, query=q, **kw),
    "broker SIGSTOP": lambda _s, q, seed, **kw: kafka_broker_pause(seed, query=q, **kw),
}
_BROKER_FAULTS = ("network faults", "cut at txn commit", "broker SIGSTOP")

_GENERAL = ("crash points", "random SIGKILL", "ENOSPC/EIO/EROFS", "power loss",
            "delayed close", "stray temp files", "corrupt files", "paused run", "clock jumps")
# (scenario, sink, query, source): file sink + windowed first, as the most state to lose.
MATRIX: list[tuple[str, str, str, str]] = [
    *((name, "file", "windowed", "files") for name in SCENARIOS
      if name not in (*_BROKER_FAULTS, "power loss in Delta commit")),
    *((name, "file", "stateless", "files") for name in (
        "crash points", "random SIGKILL", "corrupt files", "power loss",
        "power loss in sink data", "paused run", "clock jumps")),
    *((name, "foreach", "windowed", "files") for name in (
        "crash points", "random SIGKILL", "power loss", "corrupt files", "paused run")),
    *((name, "foreach", "stateless", "files") for name in (
        "crash points", "random SIGKILL", "clock jumps", "corrupt files", "power loss")),
    # more queries: stream-stream join, deduplication, update-mode aggregation
    ("crash points", "file", "join", "files"), ("random SIGKILL", "file", "join", "files"),
    ("power loss in sink data", "file", "join", "files"),
    ("crash points", "file", "dedup", "files"),
    ("crash points", "foreach", "aggregate", "files"),
    ("crash points", "kafka", "stateless", "files"),
    *((name, "kafka", "stateless", "files") for name in _BROKER_FAULTS),
    *(("crash points", "kafka", query, "files")
      for query in ("windowed", "join", "dedup", "aggregate")),
    ("random SIGKILL", "kafka", "aggregate", "files"),
    # the transactional sink under damaged checkpoints, a faulty and a power-cut file system
    *((name, "kafka", query, "files") for name in (
        "corrupt files", "ENOSPC/EIO/EROFS", "power loss")
      for query in ("stateless", "windowed")),
    # the Delta sink: crashes and power cuts in its commits
    *((name, "delta", query, "files") for name in (
        "crash points", "power loss in Delta commit") for query in ("windowed", "stateless")),
    # a Kafka source: into Kafka and into files
    *((name, sink, query, "kafka") for name in ("clock jumps", "paused run", "crash points")
      for sink, query in (("kafka", "stateless"), ("file", "windowed"))),
    ("clock jumps", "kafka", "windowed", "kafka"),
]


def _completed(rows: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """``rows`` and, after them, every general scenario (and the broker faults on the
    Kafka sink) over the file, foreach and Kafka sinks for a stateless and a windowed
    query that ``rows`` leaves out, from files: the suite's promise is the whole product."""
    covered = {(name, sink, query) for name, sink, query, _source in rows}
    wanted = [(name, sink, query) for sink in ("file", "foreach", "kafka")
              for query in ("stateless", "windowed")
              for name in (*_GENERAL, *(_BROKER_FAULTS if sink == "kafka" else ()))]
    return rows + [(n, s, q, "files") for n, s, q in wanted if (n, s, q) not in covered]


MATRIX = _completed(MATRIX)


def _scenario(name: str, sink: str, source: str) -> sc.Scenario:
    """The scenario, on a private broker when its sink or source is Kafka."""
    if name in _BROKER_FAULTS or (sink != "kafka" and source != "kafka"):
        return SCENARIOS[name]
    return on_broker(SCENARIOS[name], source)


def _run(entry: tuple[str, str, str, str], seed: int, *, root: str, size: sc.Size) -> Row:
    name, sink, query, source = entry
    started = time.monotonic()
    row = _scenario(name, sink, source)(sink, query, seed, root=root, size=size)
    print(f"  {name} / {source} -> {sink} / {query}: {time.monotonic() - started:.0f}s",
          flush=True)
    for note in row.notes:
        print(f"    {note}", flush=True)
    return row


def _chosen(entry: tuple[str, str, str, str], args: argparse.Namespace) -> bool:
    name, sink, query, source = entry
    wanted = (args.only, args.sink, args.query, args.source)
    return all(w in (None, v) for w, v in zip(wanted, (name, sink, query, source),
                                               strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 31))
    parser.add_argument("--only", help="one scenario name")
    parser.add_argument("--sink", help="one sink: file, foreach, kafka, delta")
    parser.add_argument("--query", help="one query: stateless, windowed, join, dedup, "
                        "aggregate")
    parser.add_argument("--source", help="one source: files, kafka")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=200, help="rows per input file")
    args = parser.parse_args(argv)
    print(f"chaos seed {args.seed} (repeat: python -m chaos --seed {args.seed})", flush=True)
    size = sc.Size(args.files, args.rows, 3)
    rows = []
    with tempfile.TemporaryDirectory(prefix="unbounded-chaos-") as root:
        for entry in MATRIX:
            if _chosen(entry, args):
                rows.append(_run(entry, args.seed, root=root, size=size))
    print(render(rows))
    print(f"seed {args.seed}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

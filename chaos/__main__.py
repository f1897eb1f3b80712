"""``make chaos`` = ``python -m chaos``: run the scenarios, print the table.

    python -m chaos                       # every scenario, a random seed (printed)
    python -m chaos --seed 1234           # repeat a run exactly
    python -m chaos --only "corrupt files" --sink file

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
from chaos.kafka import kafka_broker_pause, kafka_commit_cuts, kafka_crash_points, kafka_network
from chaos.pauses import paused_run
from chaos.report import Row, render

__all__ = ["MATRIX", "main"]

SCENARIOS: dict[str, sc.Scenario] = {
    "crash points": sc.crash_points, "random SIGKILL": sc.random_kills,
    "ENOSPC/EIO/EROFS": sc.fs_faults, "power loss": sc.power_loss,
    "delayed close": sc.delayed_close, "stray temp files": sc.stray_temps,
    "corrupt files": corruption, "paused run": paused_run, "clock jumps": sc.clock_jumps,
    "kafka crash points": lambda _s, _q, seed, **kw: kafka_crash_points(seed, **kw),
    "network faults": lambda _s, _q, seed, **kw: kafka_network(seed, **kw),
    "cut at txn commit": lambda _s, _q, seed, **kw: kafka_commit_cuts(seed, **kw),
    "broker SIGSTOP": lambda _s, _q, seed, **kw: kafka_broker_pause(seed, **kw),
}
_KAFKA = ("kafka crash points", "network faults", "cut at txn commit", "broker SIGSTOP")

# (scenario, sink, query): file sink + windowed first, as the most state to lose.
MATRIX: list[tuple[str, str, str]] = [
    *((name, "file", "windowed") for name in SCENARIOS if name not in _KAFKA),
    ("crash points", "file", "stateless"), ("random SIGKILL", "file", "stateless"),
    ("corrupt files", "file", "stateless"), ("power loss", "file", "stateless"),
    ("crash points", "foreach", "windowed"), ("random SIGKILL", "foreach", "windowed"),
    ("power loss", "foreach", "windowed"), ("corrupt files", "foreach", "windowed"),
    ("crash points", "foreach", "stateless"),
    ("random SIGKILL", "foreach", "stateless"),
    ("paused run", "foreach", "windowed"), ("paused run", "file", "stateless"),
    ("clock jumps", "foreach", "stateless"), ("clock jumps", "file", "stateless"),
    *((name, "kafka", "stateless") for name in _KAFKA),
]


def _run(name: str, sink: str, query: str, seed: int, *, root: str,
         size: sc.Size) -> Row:
    started = time.monotonic()
    row = SCENARIOS[name](sink, query, seed, root=root, size=size)
    print(f"  {name} / {sink} / {query}: {time.monotonic() - started:.0f}s", flush=True)
    for note in row.notes:
        print(f"    {note}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 31))
    parser.add_argument("--only", help="one scenario name")
    parser.add_argument("--sink", help="one sink: file, foreach, kafka")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=200, help="rows per input file")
    args = parser.parse_args(argv)
    print(f"chaos seed {args.seed} (repeat: python -m chaos --seed {args.seed})", flush=True)
    size = sc.Size(args.files, args.rows, 3)
    rows = []
    with tempfile.TemporaryDirectory(prefix="unbounded-chaos-") as root:
        for name, sink, query in MATRIX:
            if args.only in (None, name) and args.sink in (None, sink):
                rows.append(_run(name, sink, query, args.seed, root=root, size=size))
    print(render(rows))
    print(f"seed {args.seed}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

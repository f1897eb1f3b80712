"""The Kafka wire writer alone, this checkout's ``src`` against another revision's:
transactions of 500k upper-cased 100-byte values (the Kafka workload's output) written by
``TransactionalProducer`` to a 2-partition topic, alternating fresh processes on one
broker. A finer instrument than ``bench.kafka_ab`` for changes to the sink's encoding and
sending: no reader, no Polars plan, no checkpoint in the figure.

    .venv/bin/python -m bench.kafka_sink_ab HEAD~1 --rounds 5

Each process writes one transaction to warm up, then ``--transactions`` measured ones, and
reports the median process CPU and wall time of a transaction (``produce`` + commit).
Printed per variant: those medians per round, their medians, and in how many rounds this
checkout took less CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from bench.kafka_ab import REPO, _unpack

__all__ = ["main"]

_CHILD = """
import json, statistics, sys, time
import polars as pl
from unbounded._kafka.transactions import ProducerSettings, TransactionalProducer
from unbounded.testing.broker import create_topic
bootstrap, topic, rows, transactions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
values = pl.DataFrame({"value": [f"{i % 2}-{i}-".ljust(100, "x").upper()
                                 for i in range(rows)]}).to_arrow()
create_topic(bootstrap, topic, partitions=2)
producer = TransactionalProducer(ProducerSettings(bootstrap=bootstrap, transactional_id=topic))
producer.init_transactions()
cpu, wall = [], []
for i in range(transactions + 1):
    c, w = time.process_time(), time.perf_counter()
    producer.begin_transaction()
    producer.produce(values, topic)
    producer.commit_transaction()
    if i:
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
producer.close()
print(json.dumps({"cpu": statistics.median(cpu), "wall": statistics.median(wall)}))
"""


def _run(src: str, bootstrap: str, topic: str, rows: int, transactions: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _CHILD, bootstrap, topic, str(rows),
                           str(transactions)], env={**os.environ, "PYTHONPATH": src},
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"run with {src} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_sink_ab", description=__doc__)
    parser.add_argument("rev", help="the revision to compare with (e.g. HEAD~1)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--transactions", type=int, default=5)
    args = parser.parse_args()
    from unbounded.testing.broker import run_broker

    with tempfile.TemporaryDirectory() as scratch, run_broker() as bootstrap:
        variants = {args.rev: _unpack(args.rev, scratch), "working": str(REPO / "src")}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in order:
                topic = f"sink-ab-{os.getpid()}-{round_}-{order.index(name)}"
                runs[name].append(_run(variants[name], bootstrap, topic, args.rows,
                                       args.transactions))
    with open("/proc/loadavg") as load:
        print(f"load average: {load.read().split()[:3]}")
    for name, measured in runs.items():
        cpu = [r["cpu"] for r in measured]
        print(f"{name:<9} CPU s per transaction: {', '.join(f'{c:.3f}' for c in cpu)} "
              f"(median {statistics.median(cpu):.3f}); wall median "
              f"{statistics.median(r['wall'] for r in measured):.3f} s")
    won = sum(w["cpu"] < b["cpu"] for b, w in zip(runs[args.rev], runs["working"], strict=True))
    print(f"working took less CPU in {won} of {args.rounds} rounds")


if __name__ == "__main__":
    main()

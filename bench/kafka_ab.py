"""The Kafka -> Kafka run of ``bench/kafka.py``, this checkout's ``src`` against another
revision's, alternating fresh processes on one broker (a before/after on a busy machine).

    .venv/bin/python -m bench.kafka_ab HEAD~3 --rows 1000000 --repeats 6

``git archive <rev> src`` is unpacked into a temporary folder; each run is a new process
with that tree (or this checkout's ``src``) first on ``PYTHONPATH``, which runs the query
over 2,000 records of another topic first, as ``bench/kafka.py`` does, then the measured
1M. Printed per variant: the best rate, every wall time, the query process's CPU seconds
(thread CPU of every thread, which load on other cores barely changes) and the broker's,
their medians, and in how many repeats this checkout took less wall time and less CPU.
The order of the two alternates from one repeat to the next.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
WARM_UP_ROWS = 2_000

_CHILD = """
import json, os, sys, time
sys.path.insert(1, {repo!r})
import unbounded
assert unbounded.__file__.startswith(os.environ["PYTHONPATH"]), unbounded.__file__
from bench.kafka import PARTITIONS, _unbounded
from unbounded.testing.broker import create_topic
bootstrap, source, sink, checkpoint, warm = sys.argv[1:6]
create_topic(bootstrap, sink + "-warm", partitions=PARTITIONS)
_unbounded(bootstrap, warm, sink + "-warm", checkpoint + "-warm")
create_topic(bootstrap, sink, partitions=PARTITIONS)
cpu = time.process_time()
run = _unbounded(bootstrap, source, sink, checkpoint)
print(json.dumps({{"seconds": run["seconds"], "cpu": time.process_time() - cpu,
                  "rows": run["input_rows"]}}))
"""


def _unpack(rev: str, into: str) -> str:
    """``rev``'s ``src`` folder, unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    with tempfile.TemporaryFile() as tar_file:
        tar_file.write(archive)
        tar_file.seek(0)
        with tarfile.open(fileobj=tar_file) as tar:
            tar.extractall(into, filter="data")
    return os.path.join(into, "src")


def _broker_cpu_s() -> float:
    """CPU seconds of the tansu processes this process started."""
    me, total = str(os.getpid()), 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[1] == me and "tansu" in Path(f"/proc/{pid}/cmdline").read_text():
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def _run(src: str, args: list[str]) -> dict[str, Any]:
    before = _broker_cpu_s()
    done = subprocess.run([sys.executable, "-c", _CHILD.format(repo=str(REPO)), *args],
                          env={**os.environ, "PYTHONPATH": src}, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"run with {src} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["broker_cpu"] = _broker_cpu_s() - before
    return result


def _summary(name: str, runs: list[dict[str, Any]], rows: int) -> str:
    def listed(key: str) -> str:
        return ", ".join(f"{v:.2f}" for v in sorted(r[key] for r in runs))

    best = max(rows / r["seconds"] for r in runs)
    return (f"{name:<7} best {best:,.0f} records/s | wall s: {listed('seconds')} | "
            f"query CPU s: {listed('cpu')} | broker CPU s: {listed('broker_cpu')} | "
            f"medians: wall {_median(runs, 'seconds'):.2f} s, "
            f"query CPU {_median(runs, 'cpu'):.2f} s")


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _wins(base: list[dict[str, Any]], working: list[dict[str, Any]]) -> str:
    """Repeats (each ran both, back to back) in which this checkout took less."""
    def won(key: str) -> int:
        return sum(w[key] < b[key] for b, w in zip(base, working, strict=True))

    return (f"working won {won('seconds')} of {len(base)} repeats on wall time, "
            f"{won('cpu')} on query CPU; ratios of medians (working / base): wall "
            f"{_median(working, 'seconds') / _median(base, 'seconds'):.3f}, query CPU "
            f"{_median(working, 'cpu') / _median(base, 'cpu'):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_ab", description=__doc__)
    parser.add_argument("rev", help="the revision to compare with (e.g. HEAD~3)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    from bench.kafka import produce_input
    from unbounded.testing.broker import run_broker

    with tempfile.TemporaryDirectory() as scratch, run_broker() as bootstrap:
        variants = {args.rev: _unpack(args.rev, scratch), "working": str(REPO / "src")}
        stamp = time.monotonic_ns()
        source, warm = f"ab-in-{stamp}", f"ab-warm-{stamp}"
        produce_input(bootstrap, source, args.rows)
        produce_input(bootstrap, warm, WARM_UP_ROWS)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in order:
                where = os.path.join(scratch, f"cp-{name.replace('/', '_')}-{repeat}")
                sink = f"ab-out-{stamp}-{len(runs[name])}-{order.index(name)}"
                runs[name].append(_run(variants[name], [bootstrap, source, sink, where, warm]))
    with open("/proc/loadavg") as load:
        print(f"load average: {load.read().split()[:3]}")
    for name, measured in runs.items():
        print(_summary(name, measured, args.rows))
    print(_wins(runs[args.rev], runs["working"]))


if __name__ == "__main__":
    main()

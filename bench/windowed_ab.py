"""A/B of the windowed query between source trees, alternated in one window.

One long-lived worker process per tree (``PYTHONPATH=<tree>/src``) runs the windowed
benchmark's streaming query on the same input when told to; the driver asks them in
turn, reversing the order every round, so the load of the machine falls on all trees
alike. Each run prints its wall time, the process's CPU time, and the CPU time of its
threads by name (Polars' streaming executor ``async-executor``, its in-memory pool
``polars``, Python threads ``python``), read from ``/proc``. The first round warms the
workers up and is left out of the medians.

    python -m bench.windowed_ab ROUNDS NAME=TREE [NAME=TREE ...] [--input DIR]

``--input`` defaults to the windowed benchmark's cached data set (run ``python -m bench
--only windowed`` once); any folder of Parquet files with ``event_time, key, value``
works, e.g. the high-cardinality data set.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["main", "worker"]

_DEFAULT_INPUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "bench-data", "windowed-10000000", "input")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each of this process's threads, keyed ``tid:name``."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # the thread exited meanwhile
            continue
        out[f"{tid}:{name}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _by_name(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    spent: collections.Counter[str] = collections.Counter()
    for key, seconds in after.items():
        name = re.sub(r"[-_]?\d+$", "", key.split(":", 1)[1])
        spent[name] += seconds - before.get(key, 0.0)
    return {k: round(v, 3) for k, v in spent.most_common() if v >= 0.005}


def worker(input_dir: str) -> None:
    """Run the windowed query once per line read from stdin; print one JSON line each."""
    from bench import windowed
    from unbounded.sql import SparkSession
    from unbounded.sql import functions as F

    spark = SparkSession.builder.appName("bench-windowed-ab").getOrCreate()
    run_dir = tempfile.mkdtemp(prefix="windowed-ab-")
    try:
        for i, _ in enumerate(sys.stdin):
            folder = os.path.join(run_dir, str(i))
            threads, wall, cpu = _thread_cpu(), time.perf_counter(), time.process_time()
            query = windowed._streaming_query(spark, F, input_dir, os.path.join(folder, "out"),
                                              os.path.join(folder, "ckpt"))
            query.awaitTermination()
            print(json.dumps({"wall": time.perf_counter() - wall,
                              "cpu": time.process_time() - cpu,
                              "threads": _by_name(threads, _thread_cpu()),
                              "failed": str(query.exception() or "")}), flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        spark.stop()


def _start(tree: str, input_dir: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=f"{tree}/src{os.pathsep}{tree}")
    # This file runs as the worker of every tree (a tree under test may predate it).
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", input_dir],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=tree, env=env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=8)
    parser.add_argument("trees", nargs="*", metavar="NAME=TREE")
    parser.add_argument("--input", default=_DEFAULT_INPUT)
    parser.add_argument("--worker", metavar="INPUT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    procs = {name: _start(tree, args.input)
             for name, tree in (t.split("=", 1) for t in args.trees)}
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in procs}
    for r in range(args.rounds):
        for name in (list(procs) if r % 2 == 0 else list(reversed(procs))):
            proc = procs[name]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            runs[name].append(json.loads(proc.stdout.readline()))
        print(r, {n: (round(float(str(v[-1]["wall"])), 3), v[-1]["threads"])
                  for n, v in runs.items()}, flush=True)
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    for name, done in runs.items():
        kept = done[1:] or done
        walls = [float(str(d["wall"])) for d in kept]
        cpus = [float(str(d["cpu"])) for d in kept]
        failed = [d["failed"] for d in done if d["failed"]]
        print(f"{name}: wall median {statistics.median(walls):.3f} s, best {min(walls):.3f} s;"
              f" CPU median {statistics.median(cpus):.3f} s"
              + (f"; FAILED: {failed[0]}" if failed else ""))
    _print_ratios(runs)


def _print_ratios(runs: dict[str, list[dict[str, object]]]) -> None:
    """Each tree against the first, round by round (the rounds share the load)."""
    first, *others = list(runs)
    for name in others:
        for measure in ("wall", "cpu"):
            ratios = [float(str(b[measure])) / float(str(a[measure]))
                      for a, b in zip(runs[first][1:], runs[name][1:], strict=True)]
            if ratios:
                print(f"{name}/{first} {measure}: median of {len(ratios)} round ratios "
                      f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-"
                      f"{max(ratios):.3f})")


if __name__ == "__main__":
    main()

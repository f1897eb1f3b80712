"""Start-up (issue 15) of this checkout's ``src`` against another revision's, alternating
fresh processes launch by launch (a before/after on a busy machine).

    .venv/bin/python -m bench.start_ab main --rounds 16

``git archive <rev> src`` is unpacked into a temporary folder. Each round, for each
variant in turn (the order alternates): a new checkpoint, one file, a launch of the
small-batch windowed query (``bench/small_batch_query.py``) to ``commits/0``; one more
file and a second launch to ``commits/1``; each process exits at its commit, as a
SIGKILL would leave it. Bytecode is cached per variant (one unmeasured launch first).
Each launch reports its own CPU (``time.process_time``: the import of ``unbounded.sql``,
the session and ``start()``, then to the commit) beside the wall time from launch to
the commit, measured here, and the wall time from the session's creation to the
commit (``start_to_commit_wall``, measured in the launched process: the checkpoint's
fsyncs without the import's wait for a core). Printed: per figure the medians, minimums
and the median of the per-round ratios (this checkout over the revision): on a loaded
machine, read CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.small_batch import _write_file

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("wall", "cpu", "import_cpu", "start_cpu", "to_commit_cpu", "start_to_commit_wall")

_CHILD = """
import json, os, sys, time
started = time.process_time()
from unbounded.sql import SparkSession
imported = time.process_time()
import unbounded
assert unbounded.__file__.startswith(os.environ["PYTHONPATH"]), unbounded.__file__
sys.path.insert(1, {repo!r})
from bench.small_batch_query import start_windowed_files
input_dir, checkpoint, commit = sys.argv[1:4]
starting = time.perf_counter()
spark = SparkSession.builder.appName("start-ab").getOrCreate()
start_windowed_files(spark, input_dir, checkpoint + "-out", checkpoint,
                     processingTime="0 seconds")
planned = time.process_time()
while not os.path.exists(os.path.join(checkpoint, "commits", commit)):
    time.sleep(0.0005)
done, committed = time.process_time(), time.perf_counter()
print(json.dumps({{"cpu": done, "import_cpu": imported - started,
                  "start_cpu": planned - imported, "to_commit_cpu": done - planned,
                  "start_to_commit_wall": committed - starting}}))
sys.stdout.flush()
os._exit(0)
"""


def _unpack(rev: str, into: Path) -> Path:
    archive = into / "src.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _env(src: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(src), "PYTHONPYCACHEPREFIX": str(cache)}


def _launch(env: dict[str, str], input_dir: Path, checkpoint: Path, commit: str
            ) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD.format(repo=str(REPO)),
                           str(input_dir), str(checkpoint), commit],
                          env=env, capture_output=True, text=True, check=True, timeout=300)
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    figures["wall"] = time.perf_counter() - started
    return figures


def _start_and_restart(env: dict[str, str], root: Path) -> list[dict[str, float]]:
    shutil.rmtree(root, ignore_errors=True)
    (root / "in").mkdir(parents=True)
    _write_file(str(root / "in"), 0)
    fresh = _launch(env, root / "in", root / "ckpt", "0")
    _write_file(str(root / "in"), 100)
    return [fresh, _launch(env, root / "in", root / "ckpt", "1")]


def _report(runs: dict[str, list[list[dict[str, float]]]]) -> None:
    for i, launch in enumerate(("fresh", "restart")):
        for name in FIGURES:
            base = [r[i][name] for r in runs["rev"]]
            this = [r[i][name] for r in runs["this"]]
            ratio = statistics.median(t / b for t, b in zip(this, base, strict=True))
            print(f"{launch:8s}{name:21s} rev {1000 * statistics.median(base):7.1f} "
                  f"(min {1000 * min(base):6.1f}) ms  this {1000 * statistics.median(this):7.1f} "
                  f"(min {1000 * min(this):6.1f}) ms  ratio {ratio:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.start_ab")
    parser.add_argument("rev", help="the revision to compare against, e.g. main")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="start-ab-") as tmp:
        root = Path(tmp)
        envs = {"rev": _env(_unpack(args.rev, root), root / "cache-rev"),
                "this": _env(REPO / "src", root / "cache-this")}
        for name, env in envs.items():  # fills each variant's bytecode cache
            _start_and_restart(env, root / f"warm-{name}")
        runs: dict[str, list[list[dict[str, float]]]] = {"rev": [], "this": []}
        for i in range(args.rounds):
            for name in (("rev", "this") if i % 2 == 0 else ("this", "rev")):
                runs[name].append(_start_and_restart(envs[name], root / f"{name}-{i}"))
        _report(runs)


if __name__ == "__main__":
    main()

"""``make bench`` = ``python -m bench``: run the workloads, print the table, write the JSON.

Each workload runs in its own child process (``--worker NAME``) with a time limit, so
that one that fails, hangs or crashes is reported as ``failed: <reason>`` and the others
still run; the child's output goes to ``bench-data/logs/<name>.log``.

    python -m bench                          # every workload at its default size
    python -m bench --only windowed --rows 1000000
    python -m bench --only throughput --in-process   # no child process (for debugging)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

from bench import (
    delta,
    high_cardinality,
    join,
    kafka,
    kafka_read,
    observe_overhead,
    postgres,
    ray_windowed,
    sessionization,
    small_batch,
    state_restore,
    throughput,
    udf,
    windowed,
)
from bench.harness import (
    DATA_ROOT,
    REPO_ROOT,
    BenchContext,
    Workload,
    WorkloadResult,
    failure_reason,
    render_table,
    write_results,
)

__all__ = ["WORKLOADS", "main"]

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (throughput.WORKLOAD, windowed.WORKLOAD, state_restore.WORKLOAD,
              join.WORKLOAD, kafka.WORKLOAD, kafka_read.WORKLOAD, ray_windowed.WORKLOAD,
              small_batch.WORKLOAD, udf.WORKLOAD, observe_overhead.WORKLOAD,
              delta.WORKLOAD, postgres.WORKLOAD, sessionization.WORKLOAD,
              high_cardinality.WORKLOAD)
}


def _run_here(workload: Workload, rows: int | None) -> WorkloadResult:
    ctx = BenchContext(rows=rows or workload.default_rows)
    started = time.perf_counter()
    try:
        result = workload.run(ctx)
    except Exception as exc:
        traceback.print_exc()
        result = WorkloadResult(workload.name, status="failed", error=failure_reason(exc),
                                params={"rows": ctx.rows})
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _run_in_own_group(cmd: list[str], log_path: str, timeout: float) -> int:
    """Run ``cmd`` in a new process group; on timeout kill the group (a JVM or a broker
    the workload started goes with it) and re-raise."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise


def _run_child(workload: Workload, rows: int | None, timeout: float) -> WorkloadResult:
    """Run one workload in a child process; a crash or timeout becomes a failed result."""
    logs = os.path.join(DATA_ROOT, "logs")
    os.makedirs(logs, exist_ok=True)
    log_path = os.path.join(logs, f"{workload.name}.log")
    fd, result_path = tempfile.mkstemp(prefix=f"bench-{workload.name}-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, "-m", "bench", "--worker", workload.name, "--result-file",
           result_path] + (["--rows", str(rows)] if rows else [])
    started = time.perf_counter()
    try:
        returncode = _run_in_own_group(cmd, log_path, timeout)
        with open(result_path) as f:
            text = f.read()
        if text:
            result = WorkloadResult.from_json(json.loads(text))
        else:
            reason = _last_line(log_path) or f"exit code {returncode}"
            result = WorkloadResult(workload.name, status="failed", error=reason)
    except subprocess.TimeoutExpired:
        result = WorkloadResult(workload.name, status="failed",
                                error=f"timed out after {timeout:.0f} s (--timeout)")
    finally:
        os.unlink(result_path)
    result.log = os.path.relpath(log_path, REPO_ROOT)
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS), metavar="NAME",
                        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows (keys for state_restore) instead of each default size")
    parser.add_argument("--timeout", type=float, default=420.0,
                        help="seconds a workload may run before it is reported failed")
    parser.add_argument("--in-process", action="store_true",
                        help="run workloads in this process (no isolation, for debugging)")
    parser.add_argument("--output", default=None,
                        help="JSON result path (default bench/results/latest.json)")
    parser.add_argument("--worker", choices=sorted(WORKLOADS), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser


def _worker(args: argparse.Namespace) -> int:
    result = _run_here(WORKLOADS[args.worker], args.rows)
    with open(args.result_file, "w") as f:
        json.dump(result.to_json(), f)
    return 0 if result.status != "failed" else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        return _worker(args)
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160)
    results: list[WorkloadResult] = []
    for name in args.only or list(WORKLOADS):
        workload = WORKLOADS[name]
        with console.status(f"running [bold]{name}[/]: {workload.description}"):
            if args.in_process:
                result = _run_here(workload, args.rows)
            else:
                result = _run_child(workload, args.rows, args.timeout)
        console.print(f"{name}: {result.status} in {result.seconds} s")
        results.append(result)
    recorded: dict[str, Any] = {k: v for k, v in vars(args).items()
                                if k not in ("worker", "result_file")}
    path = write_results(results, recorded, args.output)
    console.print(render_table(results))
    console.print(f"results written to {os.path.relpath(path, REPO_ROOT)}")
    ok = all(r.status != "failed" and r.checks_passed for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Running a streaming job as a child process and SIGKILLing it, for the crash tests.

Every wait is bounded and a child is killed by its PID whatever happens, so a hung job
fails its test instead of outliving it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Sequence

__all__ = ["kill_at_random", "run_job", "run_killed_at"]

TIMEOUT_S = 120


def run_job(cmd: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to its end (or SIGKILL); ``subprocess.run`` kills it on timeout."""
    return subprocess.run(list(cmd), env=env, timeout=TIMEOUT_S, capture_output=True,
                          text=True, check=False)


def run_killed_at(cmd: Sequence[str], env: dict[str, str], point: str, batch_id: int) -> None:
    """Run ``cmd`` until it SIGKILLs itself at the named fault point of ``batch_id``; fail
    if it ends any other way (the point was never reached, or the job failed)."""
    crashed = run_job(cmd, {**env, "UNBOUNDED_FAULT": f"{point}@{batch_id}"})
    assert crashed.returncode == -signal.SIGKILL, (
        f"{point}@{batch_id}: exit {crashed.returncode}\n{crashed.stderr}")


def kill_at_random(cmd: Sequence[str], env: dict[str, str], rng: random.Random,
                   after_s: tuple[float, float]) -> None:
    """Start ``cmd`` and SIGKILL it after a random delay in ``after_s`` (if it is still
    running then); always reaped before returning."""
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(rng.uniform(*after_s))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)

"""Run the chaos job as child processes: to its end, killed at a named crash point, or
SIGKILLed at random moments and restarted until it finishes; time each recovery (from
the SIGKILL to the next batch committed by a successor).

Every wait is bounded and a child is killed by its PID whatever happens.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

__all__ = ["REPO", "JobSpec", "Supervised", "commit_count", "run_to_end", "supervise"]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class JobSpec:
    """One chaos job: which sink and query, over which folders (and broker)."""

    sink: str
    query: str
    workdir: str
    bootstrap: str = ""
    topic: str = ""
    env: tuple[tuple[str, str], ...] = ()
    source_topic: str = ""  # read from this topic instead of the input folder

    @property
    def input(self) -> str:
        return self.source_topic or os.path.join(self.workdir, "input")

    @property
    def output(self) -> str:
        return self.topic or os.path.join(self.workdir, "output")

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.workdir, "checkpoint")

    def command(self) -> list[str]:
        extra = [self.bootstrap] if self.bootstrap else []
        return [sys.executable, "-m", "chaos.job", self.sink, self.query, self.input,
                self.output, self.checkpoint, *extra]

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNBOUNDED_")}
        env["PYTHONPATH"] = os.pathsep.join([REPO, os.path.join(REPO, "src")])
        return {**env, **dict(self.env), **(extra or {})}


@dataclass
class Supervised:
    """How a supervised sequence of runs ended."""

    returncode: int
    stderr: str
    kills: int = 0
    recoveries_s: list[float] = field(default_factory=list)


def commit_count(checkpoint: str) -> int:
    folder = os.path.join(checkpoint, "commits")
    if not os.path.isdir(folder):
        return 0
    return sum(1 for n in os.listdir(folder) if n.isdigit())


def run_to_end(spec: JobSpec, extra: dict[str, str] | None = None,
               timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run the job to its end (``subprocess.run`` kills it on timeout)."""
    return subprocess.run(spec.command(), env=spec.environ(extra), timeout=timeout_s,
                          capture_output=True, text=True, check=False)


class _Recovery:
    """The pending SIGKILL whose recovery (next commit) is not seen yet."""

    def __init__(self) -> None:
        self.killed_at: float | None = None
        self.commits = 0

    def start(self, commits: int) -> None:
        self.killed_at, self.commits = time.monotonic(), commits

    def poll(self, checkpoint: str, out: list[float]) -> None:
        if self.killed_at is not None and commit_count(checkpoint) > self.commits:
            out.append(time.monotonic() - self.killed_at)
            self.killed_at = None


def _watch(proc: subprocess.Popen[bytes], until: float, spec: JobSpec,
           recovery: _Recovery, result: Supervised) -> None:
    while proc.poll() is None and time.monotonic() < until:
        recovery.poll(spec.checkpoint, result.recoveries_s)
        time.sleep(0.005)
    recovery.poll(spec.checkpoint, result.recoveries_s)


def _first_commit(proc: subprocess.Popen[bytes], spec: JobSpec, recovery: _Recovery,
                  result: Supervised) -> None:
    """Wait until the run commits a batch (or ends): a kill before that would only ever
    hit the start-up, whose time varies more than a batch's."""
    before, deadline = commit_count(spec.checkpoint), time.monotonic() + TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        recovery.poll(spec.checkpoint, result.recoveries_s)
        if commit_count(spec.checkpoint) > before:
            return
        time.sleep(0.005)


def supervise(spec: JobSpec, rng: random.Random, kills: int, *,
              after_s: tuple[float, float] = (0.0, 0.5),
              extra: dict[str, str] | None = None, first_killed: bool = False) -> Supervised:
    """Start the job, SIGKILL it a random delay after its first commit, restart it,
    ``kills`` times; then let the last run finish. ``first_killed``: a crash point
    already killed a run."""
    result, recovery = Supervised(-1, ""), _Recovery()
    if first_killed:
        recovery.start(commit_count(spec.checkpoint))
    log = os.path.join(spec.workdir, "job.log")
    while True:
        last = result.kills >= kills
        with open(log, "wb") as out:
            proc = subprocess.Popen(spec.command(), env=spec.environ(extra),
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            if not last:
                _first_commit(proc, spec, recovery, result)
            delay = TIMEOUT_S if last else rng.uniform(*after_s)
            _watch(proc, time.monotonic() + delay, spec, recovery, result)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                recovery.start(commit_count(spec.checkpoint))
                result.kills += 1
            proc.wait(30)
        if proc.returncode != -signal.SIGKILL or last:
            with open(log, encoding="utf-8", errors="replace") as f:
                result.returncode, result.stderr = proc.returncode, f.read()
            return result

"""rand, randn, uuid and spark_partition_id give the same rows when a killed batch runs
again after a restart (they are fixed by seed, partition and row, and uuid by the batch's
logged timestamp), as Spark's per-partition generators are."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

JOB = os.path.join(os.path.dirname(__file__), "random_functions_job.py")


def _run(args, env):
    return subprocess.run([sys.executable, JOB, *args], env=env, timeout=120,
                          capture_output=True, text=True, check=False)


def test_a_batch_killed_after_its_sink_reruns_with_the_same_random_values(tmp_path,
                                                                         python_env):
    inputs = tmp_path / "input"
    inputs.mkdir()
    for k in range(3):
        (inputs / f"part{k}.json").write_text(
            "".join(json.dumps({"id": k * 10 + i}) + "\n" for i in range(4)))
    args = [str(inputs), str(tmp_path / "checkpoint"), str(tmp_path / "log.jsonl")]
    crashed = _run(args, {**python_env, "UNBOUNDED_FAULT": "after-sink@1"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    finished = _run(args, python_env)
    assert finished.returncode == 0, finished.stderr
    attempts = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [b for b, _ in attempts] == [0, 1, 1, 2]
    first, again = attempts[1][1], attempts[2][1]
    assert again == first  # the same ids, random values, UUIDs and partitions
    assert [r[0] for r in first] == [10, 11, 12, 13]
    assert len({r[3] for _, rows in attempts for r in rows}) == 12  # new UUIDs per batch

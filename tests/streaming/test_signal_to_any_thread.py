"""A SIGINT the kernel hands to a thread other than the main one still stops the query
while the main thread waits in ``awaitTermination`` (its handler runs only when the main
thread runs bytecode, so one blocked wait would hold it until the run ended)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

JOB = textwrap.dedent("""
    import signal, sys, threading, time
    from unbounded.sql import SparkSession

    spark = SparkSession.builder.appName("signal-any-thread").getOrCreate()
    query = (spark.readStream.format("rate").option("rowsPerSecond", 10).load()
             .writeStream.format("noop").option("checkpointLocation", sys.argv[1]).start())

    def interrupt_from_this_thread() -> None:
        time.sleep(1.0)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    threading.Thread(target=interrupt_from_this_thread, daemon=True).start()
    query.awaitTermination()
    print("stopped", query.isActive, flush=True)
    spark.stop()
""")


def test_sigint_delivered_to_another_thread_stops_a_query_awaited_in_main(
        tmp_path, python_env) -> None:
    proc = subprocess.Popen([sys.executable, "-c", JOB, str(tmp_path / "cp")],
                            env=python_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 0, err
    assert "stopped False" in out

"""The Quix Streams contender of the Kafka -> Kafka workload, run in Quix's own venv.

Quix Streams pins ``confluent-kafka`` below the version this project installs, so it
lives in a virtualenv of its own (``bench/quix_env.py`` makes it) and this script runs
there: standard library and ``quixstreams`` only. It reads ``rows`` records from the
source topic, upper-cases each value and writes it to the sink topic with
``processing_guarantee="exactly-once"``, then prints one JSON line: the seconds from
its first record to its last commit and the records processed.

    python bench/kafka_quix.py BOOTSTRAP SOURCE SINK ROWS STATE_DIR TIMEOUT_S
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

__all__ = ["main", "run_quix"]


def run_quix(bootstrap: str, source: str, sink: str, rows: int, state_dir: str,
             timeout_s: float) -> dict[str, Any]:
    """Run the pipeline until ``rows`` records are processed (or ``timeout_s``)."""
    from quixstreams import Application

    first: list[float] = []
    processed = [0]
    apps: list[Any] = []

    def on_processed(_topic: str, _partition: int, _offset: int) -> None:
        if not first:
            first.append(time.perf_counter())
        processed[0] += 1
        if processed[0] >= rows:
            apps[0].stop()

    app = Application(broker_address=bootstrap, consumer_group=f"bench-quix-{sink}",
                      auto_offset_reset="earliest", processing_guarantee="exactly-once",
                      state_dir=state_dir, loglevel="WARNING",
                      on_message_processed=on_processed)
    apps.append(app)
    inputs = app.topic(source, value_deserializer="bytes")
    outputs = app.topic(sink, value_serializer="bytes")
    app.dataframe(inputs).apply(lambda value: value.upper()).to_topic(outputs)
    watchdog = threading.Timer(timeout_s, app.stop)
    watchdog.start()
    try:
        app.run()
    finally:
        watchdog.cancel()
    ended = time.perf_counter()
    if not first:
        raise RuntimeError(f"Quix Streams processed no record within {timeout_s:.0f} s")
    return {"seconds": ended - first[0], "input_rows": processed[0]}


def main(argv: list[str]) -> int:
    bootstrap, source, sink, rows, state_dir, timeout_s = argv
    result = run_quix(bootstrap, source, sink, int(rows), state_dir, float(timeout_s))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

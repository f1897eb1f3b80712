"""The tests' name for ``unbounded.local_broker`` (the broker lives in the package so
that ``make demo`` can start it too)."""

from unbounded.local_broker import (
    BOOTSTRAP_ENV,
    BrokerProcess,
    create_partitions,
    create_topic,
    delete_topic,
    produce_records,
    run_broker,
    started_broker,
    tansu_binary,
    unique_topic,
)

__all__ = [
    "BOOTSTRAP_ENV",
    "BrokerProcess",
    "create_partitions",
    "create_topic",
    "delete_topic",
    "produce_records",
    "run_broker",
    "started_broker",
    "tansu_binary",
    "unique_topic",
]

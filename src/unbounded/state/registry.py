"""State store providers by class name: ``spark.sql.streaming.stateStore.providerClass``
finds its class here. Spark's provider names map to the closest provider we have."""

from __future__ import annotations

import importlib

from unbounded.errors import AnalysisException
from unbounded.state.base import (
    StateSchema,
    StateStoreConf,
    StateStoreId,
    StateStoreProvider,
    StateStoreProviderFactory,
)

__all__ = ["STATE_STORE_PROVIDERS", "create_provider", "provider_class"]

_MEMORY = "unbounded.state.memory:MemoryStateStoreProvider"
_DISK = "unbounded.state.disk:DiskStateStoreProvider"
_SPARK = "org.apache.spark.sql.execution.streaming.state."

STATE_STORE_PROVIDERS: dict[str, str] = {
    f"{_SPARK}HDFSBackedStateStoreProvider": _MEMORY,
    f"{_SPARK}RocksDBStateStoreProvider": _DISK,
    "unbounded.state.memory.MemoryStateStoreProvider": _MEMORY,
    "unbounded.state.disk.DiskStateStoreProvider": _DISK,
    "memory": _MEMORY,
    "hdfs": _MEMORY,
    "disk": _DISK,
    "rocksdb": _DISK,
}


def provider_class(name: str) -> StateStoreProviderFactory:
    """The provider class for a configured name.

    >>> provider_class("org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
    <class 'unbounded.state.disk.DiskStateStoreProvider'>
    """
    target = STATE_STORE_PROVIDERS.get(name) or STATE_STORE_PROVIDERS.get(name.lower())
    if target is None:
        raise AnalysisException(
            f"Unknown state store provider {name!r} in "
            "spark.sql.streaming.stateStore.providerClass. Use one of: "
            f"{', '.join(sorted(STATE_STORE_PROVIDERS))}.",
            error_class="STATE_STORE_PROVIDER_NOT_FOUND",
        )
    module_name, _, cls_name = target.partition(":")
    cls: StateStoreProviderFactory = getattr(importlib.import_module(module_name), cls_name)
    return cls


def create_provider(
    store_id: StateStoreId, schema: StateSchema, conf: StateStoreConf | None = None
) -> StateStoreProvider:
    """Build the provider ``conf.provider_class`` names for one operator partition;
    raises ``AnalysisException`` if the recorded state schema differs from ``schema``."""
    conf = conf or StateStoreConf()
    return provider_class(conf.provider_class)(store_id, schema, conf)

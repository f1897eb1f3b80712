"""CRC-32C (Castagnoli), the checksum of checkpoint entries, state files and Kafka
record batches, from the ``crc32c`` package's compiled module.

The package's ``__init__`` imports its command line (``argparse``, ``gettext``) and
reads its own version from the installed metadata: ~5 ms of a ~0.3 s start (issue 15)
that no checksum needs. The compiled module ``crc32c._crc32c`` is loaded on its own
under its own name (a later ``import crc32c`` reuses it); where the package lays out
its files otherwise, the package is imported as usual.

>>> hex(crc32c(b"123456789"))
'0xe3069283'
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Protocol, cast

__all__ = ["crc32c"]


class _Crc32cModule(Protocol):
    def crc32c(self, data: bytes | bytearray | memoryview, value: int = 0,
               gil_release_mode: int = -1) -> int: ...


def _compiled_module() -> ModuleType:
    name = "crc32c._crc32c"
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec("crc32c")
    locations = package.submodule_search_locations if package is not None else None
    spec = importlib.machinery.PathFinder.find_spec(name, locations) if locations else None
    if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        import crc32c as whole

        return whole
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


crc32c = cast(_Crc32cModule, _compiled_module()).crc32c

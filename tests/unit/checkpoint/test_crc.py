"""CRC-32C from the crc32c package's compiled module alone (start-up, issue 15)."""

from __future__ import annotations

import subprocess
import sys

from unbounded.checkpoint.crc import crc32c

__all__: list[str] = []


def test_the_checksum_is_the_packages_for_whole_and_chained_inputs() -> None:
    import crc32c as package

    data = bytes(range(256)) * 40
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(data) == package.crc32c(data)
    assert crc32c(data[1000:], crc32c(data[:1000])) == package.crc32c(data)
    assert crc32c(memoryview(data)[5:]) == package.crc32c(data[5:])


_PROBE = """
import sys
from unbounded.checkpoint.crc import crc32c
assert crc32c(b"123456789") == 0xE3069283
print(" ".join(m for m in ("argparse", "crc32c", "gettext") if m in sys.modules))
import crc32c as package
assert package.crc32c is crc32c, "the package reuses the module already loaded"
"""


def test_loading_it_imports_neither_the_package_init_nor_argparse() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.split() == []

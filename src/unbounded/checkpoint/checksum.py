"""Checksums of the checkpoint's Spark-format files, kept in sidecar files.

Spark's logs (``offsets/N``, ``commits/N``, ``metadata``, a file source's log, a file
sink's ``_spark_metadata/N``) stay byte for byte in Spark's format, so Spark can still
read what this engine writes and this engine can still read what Spark wrote. The
checksum of each such file ``<folder>/<name>`` lives beside it in
``<folder>/.<name>.crc32c``, one line::

    v1 crc32c=1c291ca3 length=57

(the CRC-32C of the file's bytes in hex, and their number). Hidden names are skipped by
every log listing, Spark's included, and the suffix differs from Hadoop's own ``.crc``
sidecars, which Hadoop would try to verify in its own format.

Order of writes: the file first (atomically, failing if it exists), then its sidecar. A
crash between the two leaves an intact file without a sidecar, which reads as a file
Spark wrote: accepted, unverified. A sidecar whose file differs, or a sidecar that does
not parse, raises :class:`CheckpointCorruptError`. See ``docs/design/checksums.md``.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "0")
    >>> write_checked(path, b"v1\\n{}")
    >>> read_checked_text(path)
    'v1\\n{}'
"""

from __future__ import annotations

import contextlib
import os
import re

import crc32c

from unbounded.checkpoint.atomic import write_atomic, write_atomic_replace
from unbounded.errors import CheckpointCorruptError

__all__ = [
    "RECOVERY_HINT",
    "read_checked",
    "read_checked_text",
    "remove_checked",
    "sidecar_path",
    "write_checked",
]

RECOVERY_HINT = (
    "Restore the file from a backup of the checkpoint, or, if the query can rebuild its "
    "state and output, start it with a new checkpointLocation."
)
_SIDECAR_VERSION = 1
_SIDECAR = re.compile(r"v(\d+) crc32c=([0-9a-f]{8}) length=(\d+)\n")


def sidecar_path(path: str) -> str:
    """Where the checksum of ``path`` is kept."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.crc32c")


def _sidecar_line(data: bytes) -> bytes:
    return f"v{_SIDECAR_VERSION} crc32c={crc32c.crc32c(data):08x} length={len(data)}\n".encode()


def write_checked(path: str, data: bytes) -> None:
    """Publish ``data`` at ``path`` (failing if it exists), then its checksum sidecar."""
    write_atomic(path, data)
    write_atomic_replace(sidecar_path(path), _sidecar_line(data), sync_dir=False)


def remove_checked(path: str) -> None:
    """Delete ``path`` and its sidecar (retention, compaction)."""
    for p in (path, sidecar_path(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CheckpointCorruptError(
            f"Cannot read checkpoint file {path}: {e}. {RECOVERY_HINT}") from e


def _expected(path: str) -> tuple[int, int] | None:
    """The (crc32c, length) the sidecar of ``path`` records; None without a sidecar."""
    side = sidecar_path(path)
    if not os.path.exists(side):
        return None
    raw = _read_bytes(side)
    match = _SIDECAR.fullmatch(raw.decode("ascii", errors="replace"))
    if match is None or int(match.group(1)) != _SIDECAR_VERSION:
        raise CheckpointCorruptError(
            f"The checksum file {side} of {path} is damaged: expected one line "
            f"'v{_SIDECAR_VERSION} crc32c=<8 hex digits> length=<bytes>', found {raw[:60]!r}. "
            f"If {path} itself is intact, delete {side} to accept it unverified; otherwise "
            + RECOVERY_HINT,
        )
    return int(match.group(2), 16), int(match.group(3))


def read_checked(path: str) -> bytes:
    """The bytes of ``path``, verified against its sidecar when it has one."""
    data = _read_bytes(path)
    expected = _expected(path)
    if expected is None:
        return data
    crc, length = expected
    actual = crc32c.crc32c(data)
    if len(data) != length or actual != crc:
        raise CheckpointCorruptError(
            f"Checkpoint file {path} is corrupt: expected {length} bytes with CRC-32C "
            f"{crc:08x} (recorded in {sidecar_path(path)}), found {len(data)} bytes with "
            f"CRC-32C {actual:08x}. {RECOVERY_HINT}",
        )
    return data


def read_checked_text(path: str) -> str:
    """``read_checked`` decoded as UTF-8; a decoding error names the file."""
    data = read_checked(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointCorruptError(
            f"Checkpoint file {path} is not valid UTF-8 ({e}); it is damaged. {RECOVERY_HINT}",
        ) from e

"""Atomic, durable file writes: the only way anything is written into a checkpoint.

Write to a temporary name in the same folder, flush and fsync it, publish it under its
final name with ``os.link`` (which fails if the name exists, so two writers of one entry
cannot both win), remove the temporary name, then fsync the folder so the new name
survives a power cut. A reader never sees a torn file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import uuid

from unbounded.errors import CheckpointConflictError

__all__ = ["fsync_dir", "write_atomic", "write_atomic_replace"]


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: str, data: bytes) -> str:
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def write_atomic(path: str, data: bytes) -> None:
    """Publish ``data`` at ``path``; raise CheckpointConflictError if it already exists."""
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise CheckpointConflictError(
            f"{path} was already written by another run of this query. Two runs may be "
            "using the same checkpoint location; stop one of them.",
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(os.path.dirname(path) or ".")


def write_atomic_replace(path: str, data: bytes) -> None:
    """Publish ``data`` at ``path``, replacing any previous content atomically."""
    tmp = _write_temp(path, data)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")

"""Data files wherever they live: a local path, or an object named by an fsspec URL.

The batch reader, the batch writer and the file source reach data files through these
functions, so a folder at ``s3://bucket/out`` is read and written as a local one is:
checked for existence, listed, opened and cleared through the store (the checkpoint's
:func:`~unbounded.checkpoint.storage.storage_for`, with its fsspec options), never
through the local disk, where a URL would silently become a folder named ``s3:``.

A Parquet object is opened as a seekable fsspec file, so its footer is read once and
only the selected columns' byte ranges are fetched; other formats are read whole.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.txt"), "w") as f:
    ...     _ = f.write("x")
    >>> is_folder(folder), is_file(os.path.join(folder, "a.txt")), read_bytes(f.name)
    (True, True, b'x')
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from unbounded.checkpoint.storage import FsspecStorage, is_url, storage_for

if TYPE_CHECKING:
    import pyarrow.parquet as pq

__all__ = ["arrow_input", "clear_folder", "file_size", "is_file", "is_folder", "join",
           "parquet_file", "path_exists", "read_bytes", "relative_to", "under"]


def _fs(url: str) -> Any:
    store = storage_for(url)
    assert isinstance(store, FsspecStorage)
    return store.fs


def path_exists(path: str) -> bool:
    """Whether ``path`` names a file or a folder (at a URL: an object or a prefix)."""
    return storage_for(path).exists(path)


def file_size(path: str) -> int | None:
    """The file's size in bytes (one metadata request at a URL); None when it is gone."""
    try:
        return int(_fs(path).size(path)) if is_url(path) else os.path.getsize(path)
    except FileNotFoundError:
        return None


def is_file(path: str) -> bool:
    return bool(_fs(path).isfile(path)) if is_url(path) else os.path.isfile(path)


def is_folder(path: str) -> bool:
    """A local folder, or a URL prefix that holds objects."""
    return bool(_fs(path).isdir(path)) if is_url(path) else os.path.isdir(path)


def read_bytes(path: str) -> bytes:
    """The whole file (one GET at a URL)."""
    return storage_for(path).read(path)


def arrow_input(path: str) -> str | pa.BufferReader:
    """What pyarrow's readers take for ``path``: the path itself when local, else the
    object's bytes (pyarrow would otherwise open the URL with its own S3 client, which
    knows nothing of fsspec's endpoint and credentials)."""
    return pa.BufferReader(read_bytes(path)) if is_url(path) else path


@contextlib.contextmanager
def parquet_file(path: str) -> Iterator[pq.ParquetFile]:
    """``path`` opened as Parquet: the footer is read once, for the schema and the
    read; at a URL through a seekable fsspec file (ranged GETs)."""
    import pyarrow.parquet as pq  # lazy: with pyarrow.fs ~10 ms, a query may read none

    if not is_url(path):
        with pq.ParquetFile(path) as local:
            yield local
        return
    with _fs(path).open(path, "rb") as handle, pq.ParquetFile(handle) as remote:
        yield remote


def join(folder: str, *names: str) -> str:
    """``folder/name``: ``/`` for a URL, the OS separator for a local folder."""
    if is_url(folder):
        return posixpath.join(folder.rstrip("/"), *names)
    return os.path.join(folder, *names)


def under(path: str, root: str) -> bool:
    """Whether ``path`` lies below the folder ``root``."""
    if is_url(root):
        return path.startswith(root.rstrip("/") + "/")
    return os.path.abspath(path).startswith(os.path.abspath(root).rstrip(os.sep) + os.sep)


def relative_to(path: str, root: str) -> str:
    """``path`` relative to the folder ``root``, with ``/`` between its parts."""
    if is_url(root):
        return path.removeprefix(root.rstrip("/") + "/")
    return os.path.relpath(path, root).replace(os.sep, "/")


def clear_folder(folder: str, keep: frozenset[str] = frozenset()) -> None:
    """Remove what ``folder`` holds (a file sink's manifest too), except the names in
    ``keep``; a file named ``folder`` is removed. At a URL, through the store."""
    if is_url(folder):
        _clear_url(folder, keep)
        return
    if os.path.isfile(folder):
        os.remove(folder)
        return
    for name in os.listdir(folder):
        if name not in keep:
            _remove_local(os.path.join(folder, name))


def _remove_local(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _clear_url(folder: str, keep: frozenset[str]) -> None:
    fs = _fs(folder)
    if fs.isfile(folder):
        fs.rm_file(folder)
        return
    prefix = folder.rstrip("/") + "/"
    for name in storage_for(folder).list(folder):
        if name not in keep:
            fs.rm(prefix + name, recursive=True)

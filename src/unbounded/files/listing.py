"""Which data files a path names: a file, a folder (walked, hidden names skipped) or a
glob; a folder written by a file sink names only the files its manifest lists. An
fsspec URL (``s3://bucket/out``) names the objects under it (globs are not expanded
there), or a file sink's manifest files."""

from __future__ import annotations

import datetime
import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from unbounded.checkpoint.storage import FsspecStorage, is_url, storage_for
from unbounded.files.manifest import METADATA_DIR, FileSinkManifest
from unbounded.files.stores import is_file

__all__ = ["DataFile", "expand_paths", "has_glob", "has_sink_manifest", "is_hidden_name",
           "list_data_files"]

logger = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[{")


@dataclass(frozen=True)
class DataFile:
    """A file to read: its local path (or URL), size in bytes and modification time in
    ms."""

    path: str
    size: int
    mtime_ms: int


def is_hidden_name(name: str) -> bool:
    """Spark's rule for names a file source skips (``_SUCCESS``, ``.crc``, temp files)."""
    return (name.startswith("_") and "=" not in name) or name.startswith(".") \
        or name.endswith("._COPYING_")


def has_glob(path: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in path)


def list_data_files(path: str) -> list[DataFile]:
    """The data files under ``path`` (a file, a folder or a glob), hidden names skipped.

    A folder written by a file sink yields only the files its ``_spark_metadata``
    manifest lists. The order is by modification time, then path.
    """
    if has_glob(path) and not is_url(path):
        found = [f for match in sorted(glob.glob(path)) for f in _list_one(match)]
    else:
        found = _list_one(path)
    return sorted(found, key=lambda f: (f.mtime_ms, f.path))


def has_sink_manifest(folder: str) -> bool:
    """Whether a file sink wrote ``folder`` (it holds a ``_spark_metadata`` log)."""
    if is_url(folder):
        return bool(storage_for(folder).list(FileSinkManifest(folder).metadata_path))
    return os.path.isdir(os.path.join(folder, METADATA_DIR))


def _list_one(path: str) -> list[DataFile]:
    if is_url(path):
        return _list_url(path)
    if os.path.isdir(path):
        if has_sink_manifest(path):
            return _manifest_files(path)
        return [_stat(p) for p in _walk(path)]
    if os.path.isfile(path) and not is_hidden_name(os.path.basename(path)):
        return [_stat(path)]
    return []


def _walk(folder: str) -> Iterable[str]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_hidden_name(d))
        yield from (os.path.join(root, f) for f in sorted(files) if not is_hidden_name(f))


def _stat(path: str) -> DataFile:
    st = os.stat(path)
    return DataFile(os.path.abspath(path), st.st_size, st.st_mtime_ns // 1_000_000)


def _manifest_files(folder: str) -> list[DataFile]:
    out = []
    for p in FileSinkManifest(folder).all_files():
        if os.path.isfile(p):
            out.append(_stat(p))
        else:
            logger.warning("File %s is in the manifest of %s but does not exist", p, folder)
    return out


def _list_url(url: str) -> list[DataFile]:
    """The data files under an fsspec URL (an object, or every object under a prefix),
    hidden names skipped; a file sink's output folder yields its manifest's files. One
    listing gives every object's size and time (no request per file)."""
    objects = _objects(url)
    if has_sink_manifest(url):
        return _manifest_objects(url, objects)
    prefix = url.rstrip("/") + "/"
    return [f for p, f in sorted(objects.items())
            if p == url or not any(is_hidden_name(part) for part in
                                   p.removeprefix(prefix).split("/"))]


def _objects(url: str) -> dict[str, DataFile]:
    """Every object at or under ``url``, by its full URL."""
    store = storage_for(url)
    assert isinstance(store, FsspecStorage)
    scheme = url.split("://", 1)[0]
    found = store.fs.find(url, detail=True)
    return {f"{scheme}://{p}": DataFile(f"{scheme}://{p}", int(info.get("size") or 0),
                                         _modified_ms(info))
            for p, info in found.items() if info.get("type") != "directory"}


def _manifest_objects(url: str, objects: dict[str, DataFile]) -> list[DataFile]:
    out = []
    for p in FileSinkManifest(url).all_files():
        if p in objects:
            out.append(objects[p])
        else:
            logger.warning("File %s is in the manifest of %s but does not exist", p, url)
    return out


def _modified_ms(info: dict[str, Any]) -> int:
    """An object's modification time in ms (``LastModified`` on S3, ``mtime`` or
    ``created`` elsewhere, a datetime or seconds since the epoch)."""
    value = info.get("LastModified", info.get("mtime", info.get("created")))
    if value is None:
        return 0
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Each path as itself when it is a file, else the data files it names, in order
    (at a URL, one request asks whether it is an object)."""
    out: list[str] = []
    for p in paths:
        if is_file(p):
            out.append(p if is_url(p) else os.path.abspath(p))
        else:
            out.extend(f.path for f in list_data_files(p))
    return out

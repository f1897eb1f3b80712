"""Local paths and ``file:`` URIs, in the forms Spark writes and reads them.

Example:
    >>> path_uri("/data/out")
    'file:///data/out'
    >>> local_path("file:/data/out/part-0.parquet")
    '/data/out/part-0.parquet'
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

__all__ = ["local_path", "path_uri"]


def path_uri(path: str) -> str:
    """``file:///abs/path`` for a local path; a URI is returned unchanged."""
    if "://" in path or path.startswith("file:"):
        return path
    return "file://" + os.path.abspath(path)


def local_path(uri: str) -> str:
    """The local path of ``file:///x``, ``file:/x`` (Hadoop's form) or a bare path."""
    if not uri.startswith("file:"):
        return uri
    return unquote(urlparse(uri).path)

"""Local paths and ``file:`` URIs, in the forms Spark writes and reads them.

A string is a URI only when it starts with ``scheme:``; everything else is a plain local
path, whatever characters it holds (``#``, ``?``, ``%``, spaces). A URI made here
percent-encodes those characters as Hadoop's ``Path.toUri`` does, so Spark reads it back.

Example:
    >>> path_uri("/data/out")
    'file:///data/out'
    >>> path_uri("/data/out#1/a b%")
    'file:///data/out%231/a%20b%25'
    >>> local_path("file:/data/out/part-0.parquet")
    '/data/out/part-0.parquet'
    >>> local_path("file:///data/out%231/a%20b%25"), local_path("/data/out#1")
    ('/data/out#1/a b%', '/data/out#1')
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote

__all__ = ["local_path", "path_uri"]

# Characters a URI path may hold unescaped (RFC 3986 pchar), as java.net.URI leaves them.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def path_uri(path: str) -> str:
    """``file:///abs/path`` (percent-encoded) for a local path; a URI is unchanged."""
    if "://" in path or path.startswith("file:"):
        return path
    return "file://" + quote(os.path.abspath(path), safe=_PATH_SAFE)


def local_path(uri: str) -> str:
    """The local path of ``file:///x``, ``file:/x`` (Hadoop's form) or a bare path.

    Only the ``file:`` prefix and an authority are cut: ``#`` and ``?`` in a URI are
    read as Spark reads them (a file sink's paths never carry a query or a fragment).
    """
    if not uri.startswith("file:"):
        return uri
    rest = uri[len("file:"):]
    if rest.startswith("//"):
        rest = "/" + rest[2:].partition("/")[2]
    return unquote(rest)

"""``unbounded ui``: the Structured Streaming pages for every process on this machine.

The viewer owns no query: it reads the status files that sessions publish into the run
directory (``ui_publish``) each time a page asks, plus whatever documents ``extra``
returns (the CLI passes the histories of stopped queries read from their checkpoints).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from unbounded.observe.server import UiServer
from unbounded.observe.ui import StreamingUi
from unbounded.observe.ui_publish import read_published

__all__ = ["ViewerDocuments", "serve_viewer"]

Extra = Callable[[], list[dict[str, Any]]]


class ViewerDocuments:
    """The documents the viewer shows: published runs first, then ``extra()``'s."""

    def __init__(self, directory: Path | None = None, extra: Extra | None = None) -> None:
        self._directory, self._extra = directory, extra

    def __call__(self) -> list[dict[str, Any]]:
        return read_published(self._directory) + (self._extra() if self._extra else [])


def serve_viewer(host: str, port: int, documents: ViewerDocuments,
                 max_retries: int = 16) -> UiServer:
    """Start the viewer's server (Spark's port search from ``port``) with the pages on."""
    server = UiServer.start(host, port, max_retries)
    StreamingUi(documents, "unbounded ui").mount(server)
    return server

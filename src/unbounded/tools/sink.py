"""The file sink's manifest as the checkpoint tools see it: its log files by batch id."""

from __future__ import annotations

import os

from unbounded.files.manifest import FileSinkManifest

__all__ = ["manifest_batches", "manifest_file"]


def manifest_batches(manifest: FileSinkManifest) -> dict[int, bool]:
    """Batch id -> whether its log file is a ``.compact`` file (the manifest's own
    listing, so the tools and the sink agree on which names count)."""
    return manifest._batches()


def manifest_file(manifest: FileSinkManifest, batch_id: int, compact: bool) -> str:
    name = f"{batch_id}.compact" if compact else str(batch_id)
    return os.path.join(manifest.metadata_path, name)

"""Where a query resumes: the batch to re-run (if any) and the committed offsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unbounded.checkpoint.logs import CommitLog, OffsetEntry, OffsetLog
from unbounded.errors import CheckpointCorruptError

__all__ = ["ResumePoint", "find_resume_point"]


@dataclass
class ResumePoint:
    """``rerun`` is the uncommitted batch to repeat with exactly its logged offsets."""

    next_batch_id: int
    committed_offsets: list[Any]
    watermark_ms: int
    node_watermarks: dict[str, int]
    rerun: OffsetEntry | None
    # The watermark the batch before ``next_batch_id`` ran with (late rows of the next
    # batch are those at or below it).
    previous_batch_watermark_ms: int = 0


def find_resume_point(offsets: OffsetLog, commits: CommitLog, n_sources: int) -> ResumePoint:
    last_offset = offsets.latest_id()
    last_commit = commits.latest_id()
    if last_offset is None:
        return ResumePoint(0, [None] * n_sources, 0, {}, None)
    if last_commit is not None and last_commit > last_offset:
        raise CheckpointCorruptError(
            f"The commit log ({last_commit}) is ahead of the offset log ({last_offset}) in "
            f"{offsets.folder}; the checkpoint is damaged.")
    if last_commit == last_offset:
        entry = offsets.get(last_offset)
        watermark = commits.get(last_commit).next_batch_watermark_ms
        return ResumePoint(last_offset + 1, entry.offsets, watermark, entry.watermarks, None,
                           entry.batch_watermark_ms)
    previous = last_offset - 1
    if previous >= 0 and last_commit != previous:
        raise CheckpointCorruptError(
            f"Batch {previous} has offsets but no commit in {commits.folder}, and batch "
            f"{last_offset} started after it; the checkpoint is damaged.")
    pending = offsets.get(last_offset)
    if previous < 0:
        return ResumePoint(last_offset, [None] * n_sources, pending.batch_watermark_ms,
                           pending.watermarks, pending)
    before = offsets.get(previous)
    return ResumePoint(last_offset, before.offsets, pending.batch_watermark_ms,
                       pending.watermarks, pending, before.batch_watermark_ms)

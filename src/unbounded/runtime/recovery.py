"""Where a query resumes (the batch to re-run, if any, and the committed offsets), and
the start-up cross-checks that make sure the logs it resumes from agree."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from unbounded.checkpoint.checksum import RECOVERY_HINT, remove_checked
from unbounded.checkpoint.epoch import EpochFence
from unbounded.checkpoint.logs import CommitLog, OffsetEntry, OffsetLog
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import CheckpointCorruptError
from unbounded.sinks.base import SupportsCommitCheck
from unbounded.sources.base import Offset

__all__ = ["ResumePoint", "StateLayout", "SupportsOffsetCheck", "cross_check",
           "find_resume_point"]

log = logging.getLogger(__name__)


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


@runtime_checkable
class SupportsOffsetCheck(Protocol):
    """A source that keeps its own log of what each offset covers (the file source's
    ``sources/<i>/N``) and can check, before any batch runs, that the log still holds
    every offset the retained offset log points at; it raises ``CheckpointCorruptError``
    naming the missing or contradicting file."""

    def check_offsets(self, logged: Sequence[tuple[str, Offset | None]]) -> None: ...


@dataclass(frozen=True)
class StateLayout:
    """Where the operators keep their state: ``<root>/<operator>/<partition>[/<store>]``."""

    root: str
    operators: int
    partitions: int


def cross_check(offsets: OffsetLog, commits: CommitLog, sources: Sequence[object],
                sink: object, *, fence: EpochFence, state: StateLayout | None) -> None:
    """Start-up cross-checks, before any batch runs: every retained offset entry reads
    back and its source logs hold what it points at; the sink holds the last committed
    batch (a lost latest record is repaired by re-running that batch); the state
    version the next batch opens is recoverable in every store. Never guesses: what
    cannot be repaired from intact logs raises ``CheckpointCorruptError`` naming the file."""
    _check_source_logs(offsets, sources)
    _check_sink(offsets, commits, sink, fence)
    if state is not None and state.operators:
        resume = find_resume_point(offsets, commits, len(sources))
        _check_state(state, resume.next_batch_id)


def _check_source_logs(offsets: OffsetLog, sources: Sequence[object]) -> None:
    entries = [(offsets.path(n), offsets.get(n).offsets) for n in offsets.batch_ids()]
    for i, src in enumerate(sources):
        if isinstance(src, SupportsOffsetCheck):
            src.check_offsets([(path, ends[i] if i < len(ends) else None)
                               for path, ends in entries])


def _check_sink(offsets: OffsetLog, commits: CommitLog, sink: object,
                fence: EpochFence) -> None:
    last = commits.latest_id()
    if last is None or not isinstance(sink, SupportsCommitCheck):
        return
    held = sink.last_committed_batch()
    if held is not None and held >= last:
        return
    if (-1 if held is None else held) == last - 1 and _can_rerun(offsets, commits, last):
        log.warning("The sink's record of committed batch %d (%s) is missing; re-running "
                    "the batch from the offset log to write it once", last,
                    sink.commit_record(last))
        fence.check(f"the repair that removes {commits.path(last)}")
        remove_checked(commits.path(last))
        return
    lost = 0 if held is None else held + 1
    raise CheckpointCorruptError(
        f"{commits.path(last)} says batch {last} is committed, but the sink does not hold "
        f"it: its record {sink.commit_record(lost)} is missing (the sink's last batch is "
        f"{held}). Only one lost latest batch is repaired, by re-running it while it is "
        f"the newest in the offset log and the offsets it starts from are retained; here "
        f"batches {lost}..{last} are lost, or a later batch started. "
        "Restore the sink's log, or start the query with a new checkpoint and output. "
        + RECOVERY_HINT)


def _can_rerun(offsets: OffsetLog, commits: CommitLog, batch_id: int) -> bool:
    """Batch ``batch_id`` can be run again exactly: it is the latest in the offset log
    (no later batch started), and its offsets and those it starts from are retained
    (and the batch before it is committed)."""
    has = set(offsets.batch_ids())
    return max(has, default=None) == batch_id and (batch_id == 0 or (
        batch_id - 1 in has and batch_id - 1 in set(commits.batch_ids())))


def _check_state(state: StateLayout, version: int) -> None:
    """Every store of every operator partition can open ``version`` (the next batch's)."""
    if version == 0:
        return
    for op in range(state.operators):
        folder = os.path.join(state.root, str(op))
        stores = _store_names(folder, state.partitions)
        for p in range(state.partitions):
            for name in stores:
                _check_store(os.path.join(folder, str(p), name) if name
                             else os.path.join(folder, str(p)), version)


def _store_names(operator_folder: str, partitions: int) -> list[str]:
    """The stores of an operator's partitions ("" when the partition folder is the
    store), learnt from the partitions still on disk."""
    names: set[str] = set()
    for p in range(partitions):
        folder = os.path.join(operator_folder, str(p))
        if not storage_for(folder).list(folder):
            continue
        subs = [n for n in storage_for(folder).folders(folder) if not n.startswith("_")]
        names.update(subs if subs else [""])
    return sorted(names) or [""]


def _check_store(folder: str, version: int) -> None:
    versions = _state_versions(folder)
    base = max((v for v, snap in versions if snap and v <= version), default=0)
    deltas = {v for v, snap in versions if not snap}
    missing = [v for v in range(base + 1, version + 1) if v not in deltas]
    if missing:
        raise CheckpointCorruptError(
            f"State version {version}, which the next batch opens, cannot be recovered in "
            f"{folder}: {os.path.join(folder, f'{missing[0]}.delta')} is missing "
            f"({len(missing)} delta file(s) missing). " + RECOVERY_HINT)


def _state_versions(folder: str) -> list[tuple[int, bool]]:
    """(version, is snapshot) for each state file in ``folder``."""
    names = storage_for(folder).list(folder)
    found = []
    for name in names:
        stem, _, ext = name.partition(".")
        if stem.isdigit() and ext in ("delta", "snapshot"):
            found.append((int(stem), ext == "snapshot"))
    return found

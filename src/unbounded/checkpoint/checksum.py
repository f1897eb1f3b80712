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

A folder this engine writes into also holds ``.crc32c-from``, written once before the
folder's first sidecar: the id of the first entry this engine wrote there::

    v1 first=5 crc32c=c422593c

(the CRC-32C of ``v1 first=5``). Entries with a lower id were written by Spark (a
checkpoint Spark began and this engine continued) and are read unverified; from that
id on, every entry has its sidecar, so an entry without one had it deleted and is
refused. Non-numeric names (``metadata``, ``schema``) count as id 0. Files already in
the folder without a sidecar when the marker is made, at or above its id and read
unverified until then (an older release's or Spark's ``state/<op>/_metadata/schema``
when ``join-keys`` is added), are named in it, version 2, and stay readable unverified::

    v2 first=0 unchecked=["partitioning","schema"] crc32c=5227d740

(the CRC-32C of everything before `` crc32c=``). Writing such a name anew drops it from
the list first, so its sidecar is checked from then on. Without the marker (deleted,
or a folder an older release wrote), the lowest id that has a sidecar stands in.

Order of writes: the sidecar first, durably, then the file (atomically, failing if it
exists). So no crash or power cut leaves an entry of ours without its sidecar; the one
thing they leave is a sidecar without its entry, which means the entry was never
written: it is replaced when the entry is written again and removed the first time a
process writes into its folder. "Durably" is the sidecar's data fsynced before its
name is made and, on a file system that keeps names in order
(:func:`unbounded.checkpoint.atomic.keeps_name_order`: ext4, XFS, btrfs), nothing
more: a cut that keeps the entry's name keeps the sidecar's, made before it, and the
one folder fsync after the entry makes both durable. Elsewhere the folder is fsynced
after the sidecar too. Removal goes the other way:
the entry, a folder fsync, then the sidecar. A sidecar whose file differs, or a
sidecar that does not parse, raises :class:`CheckpointCorruptError`. See
``docs/design/checksums.md``.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "0")
    >>> write_checked(path, b"v1\\n{}").wait()  # done already: its folder was fsynced
    >>> read_checked_text(path)
    'v1\\n{}'
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from unbounded.checkpoint.atomic import (
    PendingPair,
    fsync_dir_in_background,
    keeps_name_order,
    keeps_order_across,
    wait_all,
)
from unbounded.checkpoint.crc import crc32c
from unbounded.checkpoint.storage import (
    conflict_error,
    is_url,
    normalize_location,
    storage_for,
)
from unbounded.errors import CheckpointConflictError, CheckpointCorruptError

__all__ = [
    "MARKER_NAME",
    "RECOVERY_HINT",
    "FolderSync",
    "PreparedEntry",
    "accept_unverified",
    "defer_folder_sync",
    "deferred_folder_syncs",
    "first_checked_id",
    "read_checked",
    "read_checked_json",
    "read_checked_text",
    "remove_checked",
    "sidecar_path",
    "sync_deferred",
    "write_checked",
]

RECOVERY_HINT = (
    "Run `unbounded checkpoint validate <checkpoint>` to list every damaged file. Restore "
    "the file from a backup of the checkpoint; or, if the damage is in the newest batches, "
    "roll the query back to a batch before it with `unbounded checkpoint rewind "
    "<checkpoint> --to N`; or, if the query can rebuild its state and output, start it "
    "with a new checkpointLocation."
)
MARKER_NAME = ".crc32c-from"
_SIDECAR_VERSION = 1
_SIDECAR = re.compile(r"v(\d+) crc32c=([0-9a-f]{8}) length=(\d+)\n")
_SIDECAR_NAME = re.compile(r"^\.(.+)\.crc32c$")
_MARKER = re.compile(r"(v(\d+) first=(\d+)(?: unchecked=(\[.*\]))?) crc32c=([0-9a-f]{8})\n")
_UNCHECKED_VERSION = 2  # a marker that names files read unverified
_prepared: set[str] = set()
_unchecked: dict[str, frozenset[str]] = {}  # per prepared folder: its marker's names
_prepared_lock = threading.Lock()
_deferring = threading.local()  # .on: inside deferred_folder_syncs()
# Folders holding names no folder fsync made durable yet, one item per deferral: the
# folder and a number of its own, so dropping the items a fsync covered never drops a
# deferral made after it began.
_pending: list[tuple[str, int]] = []
_deferrals = itertools.count()
_pending_lock = threading.Lock()


def sidecar_path(path: str) -> str:
    """Where the checksum of ``path`` is kept."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.crc32c")


def _entry_id(name: str) -> int:
    """The batch id an entry's name starts with (``7``, ``9.compact``); 0 for others."""
    digits = re.match(r"\d+", name)
    return int(digits.group(0)) if digits else 0


def _sidecar_line(data: bytes) -> bytes:
    return f"v{_SIDECAR_VERSION} crc32c={crc32c(data):08x} length={len(data)}\n".encode()


def _marker_line(first: int, unchecked: frozenset[str] = frozenset()) -> bytes:
    """Version 1 without unchecked names, so older releases still read the marker."""
    body = f"v{_SIDECAR_VERSION} first={first}"
    if unchecked:
        names = json.dumps(sorted(unchecked), separators=(",", ":"))
        body = f"v{_UNCHECKED_VERSION} first={first} unchecked={names}"
    return f"{body} crc32c={crc32c(body.encode()):08x}\n".encode()


def write_checked(path: str, data: bytes, *, sync_in_background: bool = False,
                  after: Sequence[Future[None]] = ()) -> FolderSync:
    """Publish the checksum of ``data``, durably, then ``data`` at ``path`` (failing if
    it exists: raises ``CheckpointConflictError`` before touching its sidecar).

    ``sync_in_background=True``: the entry is named when this returns, and the folder
    fsync that makes its name durable runs on the fsync pool; the returned
    :class:`FolderSync`'s ``wait()`` returns once it did (otherwise it is done already).
    For a caller with work that may run before the name must be durable.

    ``after``: fsyncs of files the entry names (a sink's data files), issued by the
    caller; they run while the entry's own two are, and the entry is named only once
    all of them succeeded (the first error is raised, the entry left unwritten)."""
    folder = os.path.dirname(path) or "."
    if is_url(folder):  # a PUT is durable when it returns
        wait_all(after)
        _ready_for(path)
        storage_for(path).replace(sidecar_path(path), _sidecar_line(data))
        storage_for(path).create(path, data)
        return FolderSync.DONE
    if normalize_location(folder) in _prepared:
        _ready_for(path)
        pair = PendingPair(sidecar_path(path), _sidecar_line(data), path, data,
                           background=False)
        _wait_or_discard(after, pair)
        return _publish(path, pair, background=sync_in_background)
    # The folder's first write in this process writes its marker first: the entry's
    # two data fsyncs run meanwhile (as a PreparedEntry's), temporary files until named.
    entry = PreparedEntry(path, data)
    _wait_or_discard(after, entry)
    entry.publish()
    return FolderSync.DONE


def _wait_or_discard(fsyncs: Sequence[Future[None]], unnamed: PendingPair | PreparedEntry
                     ) -> None:
    """Wait for the fsyncs an entry depends on; when one failed, remove the entry's
    temporary files (it is never named) and raise the error."""
    try:
        wait_all(fsyncs)
    except BaseException:
        unnamed.discard()
        raise


class FolderSync:
    """The folder fsync that makes a just-published entry's name durable, under way on
    the fsync pool; ``wait()`` returns once it is done (raising its error, if any), and
    then counts the deferred names it covered as durable too."""

    DONE: FolderSync

    def __init__(self, future: Future[None] | None, covered: list[tuple[str, int]]) -> None:
        self._future, self._covered = future, covered

    def wait(self) -> None:
        if self._future is None:
            return
        self._future.result()
        self._future = None
        with _pending_lock:
            _drop(self._covered)


FolderSync.DONE = FolderSync(None, [])


def _ready_for(path: str) -> str:
    """``path``'s folder, prepared for a new entry there (which must not exist yet)."""
    folder = os.path.dirname(path) or "."
    _prepare(folder, _entry_id(os.path.basename(path)))
    if storage_for(path).exists(path):
        raise conflict_error(path)
    _check_from_now_on(folder, os.path.basename(path))
    return folder


def _publish(path: str, pair: PendingPair, *, background: bool = False) -> FolderSync:
    folder = os.path.dirname(path) or "."
    defer = getattr(_deferring, "on", False) and keeps_order_across(folder, folder)
    settled = _settle_pending(folder)
    later = background and not defer
    # On a file system that keeps names in order, the entry's folder fsync covers both.
    pair.publish(sync_between=not keeps_name_order(folder), sync_after=not (defer or later))
    if later:  # the deferrals it covers stay pending until it is done
        return FolderSync(fsync_dir_in_background(folder), settled)
    _after_names(folder, settled, deferred=defer)
    return FolderSync.DONE


class PreparedEntry:
    """A checked entry whose bytes and checksum are written and fsynced under temporary
    names in the background from now on, and named by :meth:`publish` (as
    :func:`write_checked` would, one data fsync sooner): ``commits/N`` while the sink
    writes. Until then only temporary files exist, which a restart removes."""

    def __init__(self, path: str, data: bytes) -> None:
        self.path, self.data = path, data
        folder = os.path.dirname(path) or "."
        self._pair = None if is_url(folder) else PendingPair(
            sidecar_path(path), _sidecar_line(data), path, data, background=True)

    def publish(self) -> None:
        if self._pair is None:
            write_checked(self.path, self.data)
            return
        try:
            _ready_for(self.path)
        except BaseException:
            self._pair.discard()
            raise
        _publish(self.path, self._pair)

    def discard(self) -> None:
        if self._pair is not None:
            self._pair.discard()


@contextlib.contextmanager
def deferred_folder_syncs() -> Iterator[None]:
    """Checked entries written inside, by this thread, into a local folder whose file
    system keeps names in order across folders (``atomic.keeps_order_across``) leave
    their folder fsync to the next checked write or removal: that write's own folder
    fsync makes them durable with it (the journal commits names in the order made), and
    one elsewhere (another file system) fsyncs them first. For entries that only a later
    entry names: a file source's log entry, then ``offsets/N``. A cut in between loses
    the unnamed entry alone, or the sidecar with it, which reads as never written."""
    before = getattr(_deferring, "on", False)
    _deferring.on = True
    try:
        yield
    finally:
        _deferring.on = before


def defer_folder_sync(folder: str) -> None:
    """Names just made in the local ``folder`` (a file sink's data files) that only a
    later checked entry names (the sink's manifest entry): where the file system keeps
    names in order across folders, that entry's folder fsync (or a later one covering
    it) makes them durable first; elsewhere the folder is fsynced now."""
    if keeps_order_across(folder, folder):
        with _pending_lock:
            _pending.append((folder, next(_deferrals)))
    else:
        storage_for(folder).sync_folder(folder)


def sync_deferred() -> None:
    """fsync every folder whose entries still wait for a later write (a run's end)."""
    with _pending_lock:
        folders = list(dict.fromkeys(folder for folder, _ in _pending))
        _pending.clear()
    for folder in folders:
        _sync_if_present(folder)


def _sync_if_present(folder: str) -> None:
    """fsync a folder whose deferred names still wait. The pending list is the
    process's, so it can name a folder another query has removed since (a temporary
    checkpoint deleted when its query stopped): a removed folder has no names left to
    make durable, so there is nothing to do, rather than an error in this query."""
    with contextlib.suppress(FileNotFoundError):
        storage_for(folder).sync_folder(folder)


def _settle_pending(folder: str) -> list[tuple[str, int]]:
    """Before a new name in ``folder``: fsync the deferred folders its folder fsync
    would not cover; returns the deferrals it will cover (a snapshot: their names came
    first; a deferral made meanwhile stays pending)."""
    with _pending_lock:
        pending = list(_pending)
    apart = [p for p in dict.fromkeys(f for f, _ in pending) if not keeps_order_across(p, folder)]
    for other in apart:
        _sync_if_present(other)
    with _pending_lock:
        _drop([item for item in pending if item[0] in apart])
    return [item for item in pending if item[0] not in apart]


def _after_names(folder: str, covered: list[tuple[str, int]], *, deferred: bool) -> None:
    """After a write's names: a deferred folder waits; a synced one made ``covered``
    durable too."""
    with _pending_lock:
        if deferred:
            _pending.append((folder, next(_deferrals)))
            return
        _drop(covered)


def _drop(items: list[tuple[str, int]]) -> None:
    """Remove these deferrals (those another fsync removed already are gone)."""
    for item in items:
        with contextlib.suppress(ValueError):
            _pending.remove(item)


def accept_unverified(path: str) -> None:
    """Record the checksum of ``path`` as it is now: for an entry that Spark wrote after
    this engine last ran (its sidecar was never there), once you know it is intact."""
    storage_for(path).replace(sidecar_path(path), _sidecar_line(_read_bytes(path)))


def _prepare(folder: str, first: int) -> None:
    """On this process's first write into ``folder``: mark it as checked from ``first``
    on (unless marked already) and remove the sidecars of entries never written."""
    key = normalize_location(folder)
    if key in _prepared and _still_marked(folder):
        return
    with _prepared_lock:
        if key in _prepared and _still_marked(folder):
            return
        store = storage_for(folder)
        store.make_folder(folder, durable=True)
        _remove_orphan_sidecars(folder)
        if not store.exists(os.path.join(folder, MARKER_NAME)):
            # Where names keep their order, the folder fsync after the entry that comes
            # next covers the marker: a cut that keeps the entry keeps the marker, and
            # one that takes both leaves the folder as it was before this process.
            with contextlib.suppress(CheckpointConflictError):  # another run marked it
                store.create(os.path.join(folder, MARKER_NAME),
                             _marker_line(first, _unchecked_names(folder, first)),
                             durable=is_url(folder) or not keeps_name_order(folder))
        marker = _marker(folder)
        _unchecked[key] = frozenset() if marker is None else marker[1]
        _prepared.add(key)


def _unchecked_names(folder: str, first: int) -> frozenset[str]:
    """Files of ``folder`` without a sidecar that read unverified now but that a marker
    from ``first`` would refuse: they predate it (an older release or Spark wrote them).
    Those at or above the lowest id with a sidecar are refused now and stay refused."""
    store = storage_for(folder)
    names = set(store.list(folder))
    sidecar_ids = [_entry_id(m.group(1)) for m in map(_SIDECAR_NAME.match, names) if m]
    below = min(sidecar_ids, default=None)
    files = names - set(store.folders(folder))
    return frozenset(n for n in files if not n.startswith(".") and f".{n}.crc32c" not in names
                     and first <= _entry_id(n) and (below is None or _entry_id(n) < below))


def _check_from_now_on(folder: str, name: str) -> None:
    """Before ``name`` is written with a sidecar, drop it from its folder's unchecked
    names (it does not exist now, so nothing unverified is lost by a crash after)."""
    key = normalize_location(folder)
    if name not in _unchecked.get(key, frozenset()):
        return
    marker = _marker(folder)
    if marker is not None and name in marker[1]:
        remaining = marker[1] - {name}
        storage_for(folder).replace(os.path.join(folder, MARKER_NAME),
                                    _marker_line(marker[0], remaining))
        _unchecked[key] = remaining


def _still_marked(folder: str) -> bool:
    """Whether a folder prepared before still has its marker: a local one is checked
    (one ``stat``), as a checkpoint may be deleted and made again while a process runs;
    a remote one is trusted, as each check would be a request."""
    if is_url(folder):
        return True
    return os.path.exists(os.path.join(folder, MARKER_NAME))


def _remove_orphan_sidecars(folder: str) -> None:
    """A sidecar without its entry is what a crash between the two writes leaves: the
    entry was never written, so its checksum goes too."""
    store = storage_for(folder)
    for name in store.list(folder):
        match = _SIDECAR_NAME.match(name)
        if match and not store.exists(os.path.join(folder, match.group(1))):
            store.delete(os.path.join(folder, name))


def remove_checked(*paths: str, sync_now: bool = True) -> None:
    """Delete ``paths`` and their sidecars (retention, compaction): the entries, their
    folders fsynced, then the sidecars, so a power cut can resurrect a sidecar alone
    (an entry never written) but never an entry without its sidecar.

    ``sync_now=False``, for entries whose return after a cut nothing reads wrongly (an
    older epoch): where names keep their order across folders, the folder fsync is left
    to the next checked write, as ``deferred_folder_syncs`` leaves a write's (the journal
    removes the entries before their sidecars); elsewhere the folder is fsynced now."""
    folders = list(dict.fromkeys(os.path.dirname(path) or "." for path in paths))
    covered = [_settle_pending(folder) for folder in folders]
    for path in paths:
        storage_for(path).delete(path)
    for folder, earlier in zip(folders, covered, strict=True):
        defer = not sync_now and keeps_order_across(folder, folder)
        if not defer:
            storage_for(folder).sync_folder(folder)
        _after_names(folder, earlier, deferred=defer)
    for path in paths:
        storage_for(path).delete(sidecar_path(path))


def _read_bytes(path: str) -> bytes:
    try:
        return storage_for(path).read(path)
    except OSError as e:
        raise CheckpointCorruptError(
            f"Cannot read checkpoint file {path}: {e}. {RECOVERY_HINT}") from e


def _expected(path: str) -> tuple[int, int] | None:
    """The (crc32c, length) the sidecar of ``path`` records; None without a sidecar."""
    side = sidecar_path(path)
    if not storage_for(side).exists(side):
        return None
    raw = _read_bytes(side)
    match = _SIDECAR.fullmatch(raw.decode("ascii", errors="replace"))
    if match is None or int(match.group(1)) != _SIDECAR_VERSION:
        raise CheckpointCorruptError(
            f"The checksum file {side} of {path} is damaged: expected one line "
            f"'v{_SIDECAR_VERSION} crc32c=<8 hex digits> length=<bytes>', found {raw[:60]!r}. "
            f"If {path} itself is intact, delete {side} and run "
            f"unbounded.checkpoint.checksum.accept_unverified({path!r}) to accept it "
            "unverified; otherwise " + RECOVERY_HINT,
        )
    return int(match.group(2), 16), int(match.group(3))


def _marker(folder: str) -> tuple[int, frozenset[str]] | None:
    """The first id ``folder``'s marker records and the names it leaves unchecked; None
    without a marker."""
    path = os.path.join(folder, MARKER_NAME)
    if not storage_for(path).exists(path):
        return None
    raw = _read_bytes(path)
    match = _MARKER.fullmatch(raw.decode("utf-8", errors="replace"))
    unchecked = _parse_unchecked(match)
    if unchecked is None:
        raise CheckpointCorruptError(
            f"The checksum marker {path} is damaged: expected one line "
            f"'v{_SIDECAR_VERSION} first=<batch id> crc32c=<8 hex digits>' (or "
            f"'v{_UNCHECKED_VERSION} first=<batch id> unchecked=<JSON list of names> "
            f"crc32c=<8 hex digits>'), found {raw[:80]!r}. It records the first entry of "
            f"{folder} that unbounded wrote; rewrite it with that id, or " + RECOVERY_HINT)
    assert match is not None
    return int(match.group(3)), unchecked


def _parse_unchecked(match: re.Match[str] | None) -> frozenset[str] | None:
    """The unchecked names of a marker line; None when it is damaged: a wrong checksum,
    an unknown version, or a list where its version has none."""
    if match is None or crc32c(match.group(1).encode()) != int(match.group(5), 16):
        return None
    version, names = int(match.group(2)), match.group(4)
    if version == _SIDECAR_VERSION and names is None:
        return frozenset()
    if version != _UNCHECKED_VERSION or names is None:
        return None
    with contextlib.suppress(ValueError):
        parsed = json.loads(names)
        if isinstance(parsed, list) and all(isinstance(n, str) for n in parsed):
            return frozenset(parsed)
    return None


def first_checked_id(folder: str) -> int | None:
    """The lowest entry id of ``folder`` from which on every entry has a sidecar (None:
    no entry does; Spark wrote the folder)."""
    names = storage_for(folder).list(folder)
    ids = [_entry_id(m.group(1)) for m in map(_SIDECAR_NAME.match, names) if m]
    marker = _marker(folder)
    candidates = ids + ([] if marker is None else [marker[0]])
    return min(candidates) if candidates else None


def _refuse_if_checked(path: str) -> None:
    """An entry without a sidecar in the checked range of its folder lost its sidecar."""
    folder, name = os.path.split(path)
    first = first_checked_id(folder or ".")
    if first is None or _entry_id(name) < first:
        return  # written by Spark: read as it is
    marker = _marker(folder or ".")
    if marker is not None and name in marker[1]:
        return  # there without a sidecar before this engine marked the folder
    raise CheckpointCorruptError(
        f"Checkpoint file {path} has no checksum file {sidecar_path(path)}, but unbounded "
        f"wrote every entry of {folder} from id {first} on with its checksum written "
        "first: the checksum was deleted, so the entry cannot be trusted. If Apache Spark "
        "wrote this entry after unbounded last ran and it is intact, accept it with "
        f"unbounded.checkpoint.checksum.accept_unverified({path!r}); otherwise "
        + RECOVERY_HINT)


def read_checked(path: str) -> bytes:
    """The bytes of ``path``, verified against its sidecar; an entry without a sidecar is
    read as Spark wrote it unless its folder says unbounded wrote it."""
    data = _read_bytes(path)
    expected = _expected(path)
    if expected is None:
        _refuse_if_checked(path)
        return data
    crc, length = expected
    actual = crc32c(data)
    if len(data) != length or actual != crc:
        raise CheckpointCorruptError(
            f"Checkpoint file {path} is corrupt: expected {length} bytes with CRC-32C "
            f"{crc:08x} (recorded in {sidecar_path(path)}), found {len(data)} bytes with "
            f"CRC-32C {actual:08x}. {RECOVERY_HINT}",
        )
    return data


def read_checked_json(path: str, what: str = "JSON") -> Any:
    """``read_checked`` parsed as JSON; a document that does not parse is a
    ``CheckpointCorruptError`` naming the file (``what`` says what it should hold)."""
    try:
        return json.loads(read_checked(path))
    except CheckpointCorruptError:
        raise  # it names the file and what its checksum expected (it is an OSError too)
    except (OSError, ValueError) as e:  # ValueError: also UnicodeDecodeError
        raise CheckpointCorruptError(f"{path} is not readable {what}: {e}") from e


def read_checked_text(path: str) -> str:
    """``read_checked`` decoded as UTF-8; a decoding error names the file."""
    data = read_checked(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointCorruptError(
            f"Checkpoint file {path} is not valid UTF-8 ({e}); it is damaged. {RECOVERY_HINT}",
        ) from e

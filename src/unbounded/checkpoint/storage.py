"""Where a checkpoint's files live: a local folder, or an object store named by a URL.

A checkpoint location is either a local path (one machine, or a shared file system) or
an fsspec URL (``s3://bucket/cp``, ``gs://...``, ``abfs://...``, ``memory://...``) that
every node of a cluster can reach. The checkpoint's readers and writers (the logs, the
epoch records, the run lease, checksums) name files by path and call
:func:`storage_for` to reach them, so one code path serves both kinds.

The operations, and what each guarantees on every store:

- ``read``: the whole object, or ``FileNotFoundError``.
- ``create``: publish bytes under a name that must not exist yet, atomically and never
  replacing; a name that exists raises :class:`CheckpointConflictError`. This is how
  entries that two runs must never both write (``offsets/N``, ``commits/N``,
  ``epochs/N``) are published.
- ``replace``: publish bytes under a name, replacing what was there; a reader sees the
  old bytes or the new ones, never a mix (sidecars, leases).
- ``list`` (names directly inside a folder; none when it does not exist), ``exists``,
  ``delete`` (missing is fine), ``make_folder``, ``sync_folder`` (make the folder's
  names durable: an fsync of a local folder, nothing on an object store, whose PUT and
  DELETE are durable when they return), ``folders`` (the sub-folders of a folder: on an
  object store, the prefixes that hold keys).

How each store keeps them (also in ``docs/architecture.md``):

- Local paths (:class:`LocalStorage`): today's writes, unchanged: temp file + fsync +
  ``link`` (create, fails on an existing name) or ``rename`` (replace) + folder fsync,
  all through :mod:`unbounded.checkpoint.atomic`'s ``FileOps`` seam, which the chaos
  suite's fault-injecting file system replaces.
- ``s3://`` (s3fs): an object PUT is atomic (readers see the whole old or new object);
  ``create`` is a conditional PUT with ``If-None-Match: *`` (AWS S3 since 2024, MinIO,
  moto), which the store refuses with 412 when the key exists. A store that ignores the
  header would let the later of two racing writers replace an entry.
- ``gs://`` (gcsfs) and ``abfs://`` (adlfs) pass ``mode="create"`` on as the store's
  own precondition (gcsfs: ``ifGenerationMatch=0``, which gcsfs calls experimental;
  adlfs: ``overwrite=False``, sent as ``If-None-Match: *``), so the server refuses a
  second writer there too; neither is tested here.
- Any other fsspec file system (``memory://``, ...): fsspec's default ``create`` checks
  for the name and then writes, which is not atomic against a second writer. The lease
  still keeps a second driver off while the first one lives, and the epoch fence stops a
  stale run at its next publish; what is weaker is only the last line of defence, two
  writers of one entry in the same instant.

Listings are never served from fsspec's listings cache: another node may have written
since. Options (endpoint, credentials) come from fsspec's own configuration:
``fsspec.config.conf["s3"] = {"endpoint_url": ...}`` or ``FSSPEC_S3_ENDPOINT_URL`` in the
environment, and the store's usual environment variables (``AWS_ACCESS_KEY_ID``, ...).
Other processes (Ray's state actors) get the driver's options as :class:`StoreOptions`
(:func:`store_options` on the driver, :meth:`StoreOptions.install` there): their own
fsspec configuration is not the driver's.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> store = storage_for(folder)
    >>> store.create(os.path.join(folder, "0"), b"v1")
    >>> store.list(folder), store.read(os.path.join(folder, "0"))
    (['0'], b'v1')
    >>> is_url("s3://bucket/cp"), is_url("/tmp/cp")
    (True, False)
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import os
import posixpath
import re
from typing import Any, Protocol

from unbounded.checkpoint import atomic
from unbounded.checkpoint.atomic import make_dirs, write_atomic, write_atomic_replace
from unbounded.errors import CheckpointConflictError, IllegalArgumentException

__all__ = [
    "CheckpointStorage",
    "FsspecStorage",
    "LocalStorage",
    "StoreOptions",
    "conflict_error",
    "is_url",
    "normalize_location",
    "storage_for",
    "store_options",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class CheckpointStorage(Protocol):
    """The file operations a checkpoint needs; see the module docstring for each one's
    guarantee. Paths are full paths or URLs, as :func:`storage_for` was given."""

    def read(self, path: str) -> bytes: ...
    def create(self, path: str, data: bytes, *, durable: bool = True) -> None: ...
    def replace(self, path: str, data: bytes, *, durable: bool = True) -> None: ...
    def list(self, folder: str) -> list[str]: ...
    def exists(self, path: str) -> bool: ...
    def delete(self, path: str) -> None: ...
    def make_folder(self, folder: str, *, durable: bool = False) -> None: ...
    def sync_folder(self, folder: str) -> None: ...
    def folders(self, folder: str) -> builtins.list[str]: ...


def conflict_error(path: str) -> CheckpointConflictError:
    """The error of a ``create`` whose name another writer published first."""
    return CheckpointConflictError(
        f"{path} was already written by another run of this query. Two runs may be "
        "using the same checkpoint location; stop one of them.",
    )


class LocalStorage:
    """A local folder: the atomic writes of :mod:`unbounded.checkpoint.atomic`."""

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def create(self, path: str, data: bytes, *, durable: bool = True) -> None:
        """``durable=False`` leaves the folder fsync to a later write that covers it."""
        write_atomic(path, data, sync_dir=durable)

    def replace(self, path: str, data: bytes, *, durable: bool = True) -> None:
        write_atomic_replace(path, data, sync_dir=durable)

    def list(self, folder: str) -> list[str]:
        return os.listdir(folder) if os.path.isdir(folder) else []

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            atomic.file_ops.unlink(path)

    def sync_folder(self, folder: str) -> None:
        atomic.fsync_dir(folder)

    def folders(self, folder: str) -> builtins.list[str]:
        return [n for n in self.list(folder) if os.path.isdir(os.path.join(folder, n))]

    def make_folder(self, folder: str, *, durable: bool = False) -> None:
        """``durable`` fsyncs each new folder's parent (a checkpoint's root)."""
        if durable:
            make_dirs(folder)
        else:
            make_dirs(folder, durable=False)  # recorded: a later parent fsync covers it


class FsspecStorage:
    """An fsspec file system (an object store): no rename, no fsync, no folders."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def read(self, path: str) -> bytes:
        data = self.fs.cat_file(path)
        assert isinstance(data, bytes)
        return data

    def create(self, path: str, data: bytes, *, durable: bool = True) -> None:
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            raise conflict_error(path) from None

    def replace(self, path: str, data: bytes, *, durable: bool = True) -> None:
        self.fs.pipe_file(path, data)

    def list(self, folder: str) -> list[str]:
        try:
            entries = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        return [posixpath.basename(str(e).rstrip("/")) for e in entries]

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def make_folder(self, folder: str, *, durable: bool = False) -> None:
        """Object stores have no folders (a key's prefix is one); others get made."""
        if not self.fs.exists(folder):
            with contextlib.suppress(FileExistsError):
                self.fs.makedirs(folder, exist_ok=True)

    def sync_folder(self, folder: str) -> None:
        """Nothing to do: a PUT or DELETE is durable once the store answered."""

    def upload(self, local: str, path: str) -> None:
        """Publish the local file ``local`` as the object ``path`` (a data file under a
        new name: one PUT, or a multipart upload that appears whole when it completes)."""
        self.fs.put_file(local, path)

    def stat(self, path: str) -> tuple[int, int]:
        """The object's size in bytes and its modification time in ms (``LastModified``
        on S3), as asked of the store."""
        info = self.fs.info(path)
        modified = info.get("LastModified", info.get("mtime", info.get("created")))
        return int(info["size"]), _epoch_ms(modified)

    def walk(self, folder: str) -> builtins.list[str]:
        """Every object under ``folder`` (at any depth), as full URLs, in name order."""
        scheme = folder.split("://", 1)[0]
        return sorted(f"{scheme}://{p}" if "://" not in p else p
                      for p in self.fs.find(folder))

    def folders(self, folder: str) -> builtins.list[str]:
        try:
            entries = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        return [posixpath.basename(str(e["name"]).rstrip("/")) for e in entries
                if e.get("type") == "directory"]


def _epoch_ms(value: Any) -> int:
    """A store's modification time (a datetime, or seconds since the epoch) in ms."""
    if value is None:
        return 0
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)


_LOCAL = LocalStorage()


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote store (a scheme other than ``file://``)."""
    match = _SCHEME.match(path)
    return match is not None and match.group(1).lower() != "file"


def normalize_location(location: str) -> str:
    """A checkpoint location as the engine keeps it: an absolute local path (``file://``
    dropped), or a URL without a trailing slash."""
    if is_url(location):
        return location.rstrip("/")
    return os.path.abspath(location.removeprefix("file://"))


def storage_for(path: str) -> CheckpointStorage:
    """The storage holding ``path``: local for paths, fsspec for URLs."""
    if not is_url(path):
        return _LOCAL
    return FsspecStorage(_filesystem(path))


class StoreOptions:
    """The fsspec options a driver opens a URL location with, for another process.

    A Ray actor's process has its own (usually empty) fsspec configuration, so the
    driver's options (endpoint, credentials, region: ``fsspec.config.conf[scheme]``,
    which includes the ``FSSPEC_<SCHEME>_*`` variables read at import) travel with the
    work that opens the location. They pickle as they are (Ray's object store, never a
    file), and ``repr`` shows only their names, so a logged call reveals no secret.

    Example:
        >>> StoreOptions("s3://b/cp", {"key": "AKIA", "secret": "shh"})
        StoreOptions('s3://b/cp', keys=['key', 'secret'])
    """

    __slots__ = ("options", "prefix")

    def __init__(self, prefix: str, options: dict[str, Any]) -> None:
        self.prefix, self.options = prefix, options

    def __repr__(self) -> str:
        return f"StoreOptions({self.prefix!r}, keys={sorted(self.options)})"

    def install(self) -> None:
        """Open every URL under ``prefix`` with these options in this process (later
        ``storage_for`` calls, the state stores' and the epoch fence's included)."""
        _INSTALLED[self.prefix] = self.options


_INSTALLED: dict[str, dict[str, Any]] = {}


def store_options(location: str) -> StoreOptions | None:
    """The options this process opens ``location`` with (installed ones first, else
    fsspec's configuration of its scheme); None for a local path."""
    if not is_url(location):
        return None
    installed = _installed_options(location)
    if installed is not None:
        return StoreOptions(location, installed)
    import fsspec.config

    scheme = location.split("://", 1)[0].lower()
    return StoreOptions(location, copy.deepcopy(fsspec.config.conf.get(scheme, {})))


def _installed_options(url: str) -> dict[str, Any] | None:
    """The options installed for the longest prefix of ``url`` (a whole path part)."""
    found = [p for p in _INSTALLED if url == p or url.startswith(p.rstrip("/") + "/")]
    return _INSTALLED[max(found, key=len)] if found else None


def _filesystem(url: str) -> Any:
    """fsspec's (cached) file system for the URL's scheme, without a listings cache,
    opened with the options installed for the URL (:class:`StoreOptions`) if any."""
    try:
        import fsspec
    except ImportError:
        raise IllegalArgumentException(
            f"The checkpoint location {url} is a URL, which needs fsspec and the store's "
            "package: pip install 'unbounded[s3]' (s3fs), or gcsfs / adlfs for gs:// and "
            "abfs://.", error_class="CHECKPOINT_STORE_UNAVAILABLE",
        ) from None
    scheme = url.split("://", 1)[0].lower()
    try:
        options = _installed_options(url) or {}
        return fsspec.filesystem(scheme, **{**options, "use_listings_cache": False})
    except (ImportError, ValueError) as e:
        raise IllegalArgumentException(
            f"Cannot open the checkpoint location {url}: {e}. Install the fsspec package "
            "of its scheme (s3fs: pip install 'unbounded[s3]').",
            error_class="CHECKPOINT_STORE_UNAVAILABLE",
        ) from e

"""The checkpoint storage contract, run against every store: a local folder, fsspec's
in-memory file system, and S3 (moto's S3 server on loopback, through s3fs)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest

from unbounded.checkpoint.atomic import make_dirs, write_atomic
from unbounded.checkpoint.storage import (
    FsspecStorage,
    LocalStorage,
    is_url,
    normalize_location,
    storage_for,
)
from unbounded.errors import CheckpointConflictError, IllegalArgumentException


@pytest.fixture(params=["local", "memory", "s3"])
def root(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A folder that does not exist yet on one store."""
    if request.param == "local":
        yield str(tmp_path / "cp")
    elif request.param == "memory":
        pytest.importorskip("fsspec", reason="fsspec is not installed")
        yield f"memory://cp-{uuid.uuid4().hex}"
    else:
        yield request.getfixturevalue("s3_bucket") + "/cp"


def test_locations_with_a_scheme_are_urls_and_file_urls_are_local_paths():
    assert is_url("s3://bucket/cp") and is_url("gs://b/x") and is_url("memory://x")
    assert not is_url("/tmp/cp") and not is_url("cp") and not is_url("file:///tmp/cp")
    assert normalize_location("file:///tmp/cp") == "/tmp/cp"
    assert normalize_location("s3://bucket/cp/") == "s3://bucket/cp"
    assert normalize_location("cp") == os.path.abspath("cp")


def test_a_path_gets_local_storage_and_a_url_fsspec_storage(root):
    store = storage_for(root)
    assert isinstance(store, FsspecStorage if is_url(root) else LocalStorage)


def test_create_publishes_once_and_never_replaces(root):
    store = storage_for(root)
    store.make_folder(root)
    path = os.path.join(root, "offsets", "0")
    store.create(path, b"v1\nfirst")
    with pytest.raises(CheckpointConflictError, match=r"offsets/0 was already written"):
        store.create(path, b"v1\nsecond")
    assert store.read(path) == b"v1\nfirst"


def test_replace_overwrites_whole(root):
    store = storage_for(root)
    store.make_folder(root)
    path = os.path.join(root, "leases", "3")
    store.replace(path, b"a" * 1000)
    store.replace(path, b"b")
    assert store.read(path) == b"b"


def test_list_names_the_entries_directly_inside_a_folder(root):
    store = storage_for(root)
    assert store.list(os.path.join(root, "offsets")) == []  # a folder never written
    store.make_folder(os.path.join(root, "offsets"))
    for name in ["0", "1", ".1.crc32c"]:
        store.create(os.path.join(root, "offsets", name), b"x")
    store.make_folder(os.path.join(root, "offsets", "sub"))
    store.create(os.path.join(root, "offsets", "sub", "2"), b"x")
    assert sorted(store.list(os.path.join(root, "offsets"))) == [".1.crc32c", "0", "1", "sub"]


def test_exists_read_and_delete(root):
    store = storage_for(root)
    store.make_folder(root)
    path = os.path.join(root, "metadata")
    assert not store.exists(path)
    with pytest.raises(FileNotFoundError):
        store.read(path)
    store.create(path, b"{}")
    assert store.exists(path)
    store.delete(path)
    store.delete(path)  # a second delete of a missing name is fine
    assert not store.exists(path)
    assert store.list(root) == []


def test_of_racing_creates_of_one_entry_exactly_one_wins(root):
    """The no-replace create is atomic on the local file system (link) and on S3, where
    the server refuses the conditional PUT (If-None-Match: *) of every writer but the
    first. (fsspec's memory store checks, then writes: not claimed atomic.)"""
    if root.startswith("memory://"):
        pytest.skip("memory:// makes no atomicity claim for create")
    store = storage_for(root)
    store.make_folder(os.path.join(root, "commits"))
    path = os.path.join(root, "commits", "7")
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def write(i: int) -> None:
        start.wait()
        try:
            store.create(path, f"writer {i}".encode())
            outcomes.append(f"won {i}")
        except CheckpointConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("refused") == 7
    assert store.read(path) == f"writer {winners[0].split()[1]}".encode()


def test_the_local_file_writers_refuse_a_url_rather_than_make_a_local_folder(tmp_path,
                                                                            monkeypatch):
    """A writer not routed through the storage layer fails naming the URL; without the
    check, ``s3://bucket/x`` would become the local folder ``./s3:/bucket``."""
    monkeypatch.chdir(tmp_path)
    for write in (lambda: write_atomic("s3://bucket/cp/x", b"1"),
                  lambda: make_dirs("s3://bucket/cp/state")):
        with pytest.raises(IllegalArgumentException, match=r"Cannot write s3://bucket/cp/"
                           ) as refused:
            write()
        assert refused.value.getErrorClass() == "CHECKPOINT_STORE_UNSUPPORTED"
    assert list(tmp_path.iterdir()) == []

"""A folder an older release (or Spark) wrote without sidecars, continued by this one:
unnumbered files that were there unchecked stay readable once a new checked file makes
the folder's marker, and a sidecar deleted from a file this engine wrote is still found.
"""

from __future__ import annotations

from pathlib import Path

import crc32c
import pytest

from unbounded.checkpoint.checksum import (
    MARKER_NAME,
    read_checked,
    remove_checked,
    sidecar_path,
    write_checked,
)
from unbounded.errors import CheckpointCorruptError


def _old_layout(folder: Path, **files: bytes) -> None:
    """``files`` as an older release left them: written checked, then every sidecar and
    the marker removed (what a release before sidecars, or Spark, leaves)."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        write_checked(str(folder / name), data)
    for path in folder.glob(".*"):
        path.unlink()


def test_old_unnumbered_files_stay_readable_after_a_new_checked_file_marks_the_folder(
        tmp_path):
    meta = tmp_path / "state" / "0" / "_metadata"
    _old_layout(meta, schema=b'{"version":2}', partitioning=b'{"version":1}')
    write_checked(str(meta / "join-keys"), b'{"version":1}')
    assert (meta / MARKER_NAME).read_text().startswith(
        'v2 first=0 unchecked=["partitioning","schema"] crc32c=')
    assert read_checked(str(meta / "schema")) == b'{"version":2}'
    assert read_checked(str(meta / "partitioning")) == b'{"version":1}'
    assert read_checked(str(meta / "join-keys")) == b'{"version":1}'
    Path(sidecar_path(str(meta / "join-keys"))).unlink()
    with pytest.raises(CheckpointCorruptError, match="join-keys has no checksum file"):
        read_checked(str(meta / "join-keys"))


def test_an_old_file_rewritten_checked_is_checked_from_then_on(tmp_path):
    """The transform-with-state file is removed and written again when its declaration
    changes: once ours, a deleted sidecar is refused."""
    meta = tmp_path / "_metadata"
    _old_layout(meta, schema=b"old", **{"transform-with-state": b"old"})
    write_checked(str(meta / "join-keys"), b"new")
    remove_checked(str(meta / "transform-with-state"))
    write_checked(str(meta / "transform-with-state"), b"rewritten")
    assert (meta / MARKER_NAME).read_text().startswith('v2 first=0 unchecked=["schema"] ')
    Path(sidecar_path(str(meta / "transform-with-state"))).unlink()
    with pytest.raises(CheckpointCorruptError, match="transform-with-state has no checksum"):
        read_checked(str(meta / "transform-with-state"))
    assert read_checked(str(meta / "schema")) == b"old"


def test_the_checkpoint_root_metadata_stays_readable_after_a_batch_zero_entry(tmp_path):
    """``metadata`` counts as id 0, as does a new entry ``0`` beside it."""
    _old_layout(tmp_path / "cp", metadata=b'{"id":"q"}')
    write_checked(str(tmp_path / "cp" / "0"), b"v1\n{}")
    assert read_checked(str(tmp_path / "cp" / "metadata")) == b'{"id":"q"}'
    assert read_checked(str(tmp_path / "cp" / "0")) == b"v1\n{}"


def test_a_marker_above_the_old_entries_lists_nothing_and_stays_version_1(tmp_path):
    """Entries below the first id read unverified anyway; a v1 marker stays readable by
    the releases before the unchecked list."""
    offsets = tmp_path / "offsets"
    _old_layout(offsets, **{"0": b"a", "1": b"b"})
    write_checked(str(offsets / "2"), b"c")
    assert (offsets / MARKER_NAME).read_text().startswith("v1 first=2 crc32c=")
    assert [read_checked(str(offsets / n)) for n in "012"] == [b"a", b"b", b"c"]


def test_a_file_whose_sidecar_was_deleted_before_the_marker_is_still_refused(tmp_path):
    """Marker and one sidecar both deleted: the sidecar of ``partitioning`` shows this
    engine wrote id 0 with checksums, so ``schema`` is not listed as an old file."""
    meta = tmp_path / "_metadata"
    meta.mkdir()
    write_checked(str(meta / "schema"), b"s")
    write_checked(str(meta / "partitioning"), b"p")
    (meta / MARKER_NAME).unlink()
    Path(sidecar_path(str(meta / "schema"))).unlink()
    write_checked(str(meta / "join-keys"), b"j")
    assert (meta / MARKER_NAME).read_text().startswith("v1 first=0 ")
    with pytest.raises(CheckpointCorruptError, match="schema has no checksum file"):
        read_checked(str(meta / "schema"))


@pytest.mark.parametrize("line", [
    'v2 first=0 unchecked=["schema"] crc32c=00000000\n',  # wrong checksum
    "v2 first=0 crc32c={crc}\n",  # version 2 without its list
    'v1 first=0 unchecked=["schema"] crc32c={crc}\n',  # version 1 with a list
    'v2 first=0 unchecked=[1] crc32c={crc}\n',  # not names
])
def test_a_damaged_marker_is_refused(tmp_path, line):
    body = line.split(" crc32c=")[0]
    _old_layout(tmp_path / "m", schema=b"s")
    write_checked(str(tmp_path / "m" / "join-keys"), b"j")
    crc = f"{crc32c.crc32c(body.encode()):08x}"
    (tmp_path / "m" / MARKER_NAME).write_text(line.replace("{crc}", crc))
    with pytest.raises(CheckpointCorruptError, match=r"checksum marker .* is damaged"):
        read_checked(str(tmp_path / "m" / "schema"))

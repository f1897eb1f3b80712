"""``unbounded checkpoint inspect|validate|rewind`` on checkpoints that real queries wrote:
a windowed count from JSON files to a Parquet sink, one file per batch, then damaged,
rewound and restarted."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from unbounded.cli import main
from unbounded.files.manifest import FileSinkManifest
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

INPUTS = [[("10:01", "a"), ("10:02", "b")], [("10:03", "a"), ("10:16", "c")],
          [("10:31", "a")], [("10:47", "d")]]
# Append mode emits a window once the watermark (max event time - 5 min) passes its end.
ROWS = [("a", "10:00", 2), ("a", "10:30", 1), ("b", "10:00", 1), ("c", "10:15", 1)]


def _ms(hhmm: str) -> int:
    hour, minute = map(int, hhmm.split(":"))
    return int(dt.datetime(2026, 1, 1, hour, minute, tzinfo=dt.UTC).timestamp() * 1000)


def _write_inputs(folder: Path) -> None:
    folder.mkdir()
    for i, rows in enumerate(INPUTS):
        lines = [json.dumps({"ts": f"2026-01-01T{t}:00", "word": w}) for t, w in rows]
        path = folder / f"in-{i}.json"
        path.write_text("\n".join(lines) + "\n")
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))


def _run(spark, root: Path) -> None:
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    spark.conf.set("spark.sql.streaming.stateStore.minDeltasForSnapshot", "2")
    df = (spark.readStream.schema("ts TIMESTAMP, word STRING")
          .option("maxFilesPerTrigger", 1).json(str(root / "in"))
          .withWatermark("ts", "5 minutes")
          .groupBy(F.window("ts", "5 minutes"), "word").count())
    query = (df.writeStream.format("parquet").outputMode("append")
             .option("path", str(root / "out"))
             .option("checkpointLocation", str(root / "cp"))
             .trigger(availableNow=True).start())
    query.awaitTermination(60)
    assert query.exception() is None


def _output(root: Path) -> list[tuple[str, str, int]]:
    files = FileSinkManifest(str(root / "out")).existing_files()
    frame = pl.read_parquet(files) if files else pl.DataFrame()
    return sorted((r["word"], r["window"]["start"].strftime("%H:%M"), r["count"])
                  for r in frame.iter_rows(named=True))


@pytest.fixture
def root(spark, tmp_path: Path) -> Path:
    """A checkpoint and output after batches 0-3 (one file each) and the no-data batch 4."""
    _write_inputs(tmp_path / "in")
    _run(spark, tmp_path)
    assert _output(tmp_path) == ROWS
    return tmp_path


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "unbounded.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


# ---- inspect ---------------------------------------------------------------------------
def test_inspect_json_lists_batches_offsets_watermarks_state_and_sink(root, capsys):
    cp = root / "cp"
    assert main(["checkpoint", "inspect", str(cp), "--sink", str(root / "out"), "--json"]) == 0
    doc = _json(capsys)
    assert doc["sources"] == ["json"] and doc["sink"] == "parquet"
    assert doc["fixed_conf"] == {"spark.sql.shuffle.partitions": "2"}
    assert [(b["batch_id"], b["committed"], b["offsets"]) for b in doc["batches"]] == [
        (0, True, [{"logOffset": 0}]), (1, True, [{"logOffset": 1}]),
        (2, True, [{"logOffset": 2}]), (3, True, [{"logOffset": 3}]),
        (4, True, [{"logOffset": 3}])]
    assert [b["watermark_ms"] for b in doc["batches"]] == [
        0, _ms("09:57"), _ms("10:11"), _ms("10:26"), _ms("10:42")]
    assert doc["lastCommittedBatch"] == 4
    assert doc["watermarkIso"] == "2026-01-01T10:42:00.000+00:00"
    [operator] = doc["operators"]
    assert operator["num_partitions"] == 2
    assert [(s["partition_id"], s["latest_version"], s["delta_versions"], s["snapshot_versions"])
            for s in operator["stores"]] == [(0, 5, [1, 2, 3, 4, 5], [2, 4]),
                                             (1, 5, [1, 2, 3, 4, 5], [2, 4])]
    assert all(s["size_bytes"] > 0 for s in operator["stores"])
    assert doc["sink_manifest"]["batch_ids"] == [0, 1, 2, 3, 4]
    assert doc["sink_manifest"]["num_files"] == 3  # batches 2-4 emitted rows


def test_inspect_for_humans_shows_iso_times_and_the_alias_still_works(root):
    new = _cli("checkpoint", "inspect", str(root / "cp"), "--sink", str(root / "out"))
    old = _cli("inspect", str(root / "cp"))
    assert new.returncode == 0 and old.returncode == 0, new.stderr + old.stderr
    assert "next batch watermark 2026-01-01T10:42:00.000+00:00" in new.stdout
    assert '{"logOffset": 3}' in new.stdout and "batches 0-4; 3 files" in new.stdout
    assert "query id" in old.stdout and "2026-01-01T10:26:00.000+00:00" in old.stdout


# ---- validate --------------------------------------------------------------------------
def test_validate_passes_a_sound_checkpoint(root, capsys):
    assert main(["checkpoint", "validate", str(root / "cp"), "--sink", str(root / "out"),
                 "--json"]) == 0
    assert _json(capsys) == {"sound": True, "problems": []}
    done = _cli("checkpoint", "validate", str(root / "cp"), "--sink", str(root / "out"))
    assert done.returncode == 0 and done.stdout.strip().endswith(": sound")


def _flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _sink_file(root: Path) -> Path:
    return Path(FileSinkManifest(str(root / "out")).all_files()[0])


DAMAGE = {
    # state version 5 (after the last batch) is snapshot 4 + delta 5
    "needed state delta deleted": (lambda r: r / "cp/state/0/1/5.delta", _delete,
                                   "state version 5 of"),
    "older state delta truncated": (lambda r: r / "cp/state/0/0/3.delta", _truncate,
                                    "is corrupt"),
    "state snapshot bit flipped": (lambda r: r / "cp/state/0/0/4.snapshot",
                                   lambda p: _flip_bit(p, 300), "is corrupt"),
    "gap in the offset log": (lambda r: r / "cp/offsets/2", _delete,
                              "batch 2 is missing from the offsets log"),
    "commit bit flipped": (lambda r: r / "cp/commits/1", lambda p: _flip_bit(p, 5),
                           "CRC-32C"),
    "offset entry bit flipped": (lambda r: r / "cp/offsets/3", lambda p: _flip_bit(p, 30),
                                 "CRC-32C"),
    "source log bit flipped": (lambda r: r / "cp/sources/0/1", lambda p: _flip_bit(p, 10),
                               "CRC-32C"),
    "sink manifest bit flipped": (lambda r: r / "out/_spark_metadata/3",
                                  lambda p: _flip_bit(p, 20), "CRC-32C"),
    "sink data file deleted": (_sink_file, _delete, "listed in the file sink manifest"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_validate_names_the_damaged_file_and_exits_1(root, capsys, damage):
    locate, harm, words = DAMAGE[damage]
    target = locate(root)
    harm(target)
    assert main(["checkpoint", "validate", str(root / "cp"), "--sink", str(root / "out"),
                 "--json"]) == 1
    doc = _json(capsys)
    assert doc["sound"] is False
    named = [p for p in doc["problems"] if p["file"] == str(target)]
    assert named and words in named[0]["problem"], doc["problems"]


def test_validate_in_a_subprocess_prints_each_problem_with_its_file(root):
    (root / "cp/state/0/1/5.delta").unlink()
    _flip_bit(root / "cp/commits/1", 5)
    done = _cli("checkpoint", "validate", str(root / "cp"))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].endswith("2 problem(s)")
    assert any(ln.startswith(f"{root / 'cp/commits/1'}: ") for ln in lines)
    assert any(ln.startswith(f"{root / 'cp/state/0/1/5.delta'}: ") for ln in lines)


def test_validate_reports_a_sink_manifest_ahead_of_the_offset_log(root, capsys):
    for name in ("4", ".4.crc32c"):
        (root / "cp/offsets" / name).unlink()
        (root / "cp/commits" / name).unlink()
    assert main(["checkpoint", "validate", str(root / "cp"), "--sink", str(root / "out"),
                 "--json"]) == 1
    [problem] = _json(capsys)["problems"]
    assert problem["file"] == str(root / "out/_spark_metadata/4")
    assert "a restart would skip" in problem["problem"]


def test_every_tool_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    for tool in (["inspect"], ["validate"], ["rewind", "--to", "0", "--yes"]):
        assert main(["checkpoint", tool[0], str(tmp_path), *tool[1:]]) == 2
        assert "is not a checkpoint" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


# ---- rewind ----------------------------------------------------------------------------
def test_rewind_then_restart_writes_batches_from_n_again_exactly_once(spark, root, capsys):
    before = {b: (root / "cp/offsets" / str(b)).read_text() for b in range(5)}
    assert main(["checkpoint", "rewind", str(root / "cp"), "--to", "2", "--sink",
                 str(root / "out"), "--yes"]) == 0
    assert "next run starts at batch 2" in capsys.readouterr().out
    assert sorted(os.listdir(root / "cp/offsets")) == [".0.crc32c", ".1.crc32c", ".crc32c-from",
                                                         "0", "1"]
    assert FileSinkManifest(str(root / "out")).latest_batch_id() == 1
    assert _output(root) == []  # windows close from batch 2 on
    assert {v for s in ("0", "1") for v in os.listdir(root / f"cp/state/0/{s}")} == {
        "1.delta", "2.delta", "2.snapshot"}
    assert main(["checkpoint", "validate", str(root / "cp"), "--sink", str(root / "out")]) == 0
    _run(spark, root)
    assert _output(root) == ROWS
    # the same batches again: batch b reads the same source log batch as before
    assert [json.loads((root / "cp/offsets" / str(b)).read_text().split("\n")[2])
            for b in range(5)] == [json.loads(before[b].split("\n")[2]) for b in range(5)]


def test_rewind_sets_files_aside_with_a_record_of_every_move(root, capsys):
    assert main(["checkpoint", "rewind", str(root / "cp"), "--to", "3", "--sink",
                 str(root / "out"), "--yes", "--json"]) == 0
    doc = _json(capsys)
    [aside] = os.listdir(root / "cp/rewound")
    assert doc["aside"] == str(root / "cp/rewound" / aside) and aside.endswith("-to-3")
    record = json.loads((root / "cp/rewound" / aside / "rewind.json").read_text())
    assert record == doc
    moved = {(m["kind"], os.path.relpath(m["from"], root)) for m in doc["moves"]}
    assert {("offsets", "cp/offsets/3"), ("offsets", "cp/offsets/4"),
            ("commits", "cp/commits/4"), ("state", "cp/state/0/0/5.delta"),
            ("state", "cp/state/0/1/4.snapshot"),
            ("manifest", "out/_spark_metadata/3")} <= moved
    assert ("state", "cp/state/0/0/3.delta") not in moved
    for m in doc["moves"]:
        assert os.path.exists(m["to"]) and not os.path.exists(m["from"])
    assert (root / "cp/rewound" / aside / "offsets/3").read_text().startswith("v1\n")


def test_rewind_asks_for_confirmation_unless_yes(root):
    args = ("checkpoint", "rewind", str(root / "cp"), "--to", "1", "--sink", str(root / "out"))
    refused = _cli(*args, stdin="n\n")
    assert refused.returncode == 1 and "Proceed? [y/N]" in refused.stderr
    assert "Not rewound" in refused.stderr and (root / "cp/offsets/4").exists()
    done = _cli(*args, stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert sorted(n for n in os.listdir(root / "cp/offsets") if n.isdigit()) == ["0"]


def test_rewind_dry_run_moves_nothing(root, capsys):
    assert main(["checkpoint", "rewind", str(root / "cp"), "--to", "1", "--sink",
                 str(root / "out"), "--dry-run"]) == 0
    assert "4 offset log entries" in capsys.readouterr().out
    assert not (root / "cp/rewound").exists() and (root / "cp/offsets/4").exists()


@pytest.mark.parametrize(("args", "harm", "words"), [
    (["--to", "2"], None, "give their folder with --sink PATH"),
    (["--to", "9", "--sink", "out"], None, "Nothing to rewind"),
    (["--to", "2", "--sink", "out"], "cp/commits/1", "batch 1 has no commit"),
    (["--to", "1", "--sink", "out"], "cp/state/0/1/1.delta", "state maintenance removed"),
])
def test_rewind_refuses_what_could_not_restart(root, capsys, args, harm, words):
    if harm:
        (root / harm).unlink()
    args = [os.path.join(root, a) if a == "out" else a for a in args]
    assert main(["checkpoint", "rewind", str(root / "cp"), *args, "--yes"]) == 1
    assert words in capsys.readouterr().err
    assert not (root / "cp/rewound").exists()


def test_rewind_is_refused_while_a_query_runs_on_the_checkpoint(spark, tmp_path, capsys):
    stream = MemoryStream("id LONG", spark)
    cp = tmp_path / "cp"
    query = stream.toDF().writeStream.format("noop").option(
        "checkpointLocation", str(cp)).start()
    try:
        stream.addData([(1,)])
        query.processAllAvailable(30)
        assert main(["checkpoint", "rewind", str(cp), "--to", "0", "--yes"]) == 1
        assert "Another run of this query is active" in capsys.readouterr().err
        assert (cp / "offsets" / "0").exists()
    finally:
        query.stop()
    assert main(["checkpoint", "rewind", str(cp), "--to", "0", "--yes"]) == 0
    assert [n for n in os.listdir(cp / "offsets") if n.isdigit()] == []


def test_a_join_s_left_and_right_stores_are_inspected_validated_and_rewound(
        spark, tmp_path, capsys):
    left = MemoryStream("k INT, a STRING", spark)
    right = MemoryStream("k INT, b STRING", spark)
    cp = tmp_path / "cp"
    joined = left.toDF().join(right.toDF(), "k")
    for k in range(3):  # one batch per pair: a running query could take a side alone
        left.addData([(k, f"a{k}")])
        right.addData([(k, f"b{k}")])
        q = (joined.writeStream.format("noop").option("checkpointLocation", str(cp))
             .trigger(availableNow=True).start())
        assert q.awaitTermination(60)
    assert main(["checkpoint", "inspect", str(cp), "--json"]) == 0
    [operator] = _json(capsys)["operators"]
    assert [(s["partition_id"], s["store_name"], s["latest_version"])
            for s in operator["stores"]] == [(0, "left", 3), (0, "right", 3),
                                             (1, "left", 3), (1, "right", 3)]
    assert main(["checkpoint", "validate", str(cp)]) == 0
    capsys.readouterr()
    (cp / "state/0/1/right/2.delta").write_bytes(b"")
    assert main(["checkpoint", "validate", str(cp), "--json"]) == 1
    assert [p["file"] for p in _json(capsys)["problems"]] == [str(cp / "state/0/1/right/2.delta")]
    assert main(["checkpoint", "rewind", str(cp), "--to", "2", "--yes", "--json"]) == 0
    doc = _json(capsys)
    assert doc["notes"] == ["The noop sink is not rewound: batches from the target on are "
                            "written to it again."]
    assert sorted(os.path.relpath(m["from"], cp) for m in doc["moves"] if m["kind"] == "state") \
        == [f"state/0/{p}/{side}/3.delta" for p in (0, 1) for side in ("left", "right")]


@pytest.mark.parametrize("to", [0, 1, 3, 4])
def test_rewind_to_any_kept_batch_then_restart_reproduces_the_output(spark, root, to):
    before = [(root / "cp/offsets" / str(b)).read_text().split("\n")[2] for b in range(5)]
    assert main(["checkpoint", "rewind", str(root / "cp"), "--to", str(to), "--sink",
                 str(root / "out"), "--yes"]) == 0
    assert FileSinkManifest(str(root / "out")).latest_batch_id() == (to - 1 if to else None)
    _run(spark, root)
    assert _output(root) == ROWS
    assert [(root / "cp/offsets" / str(b)).read_text().split("\n")[2]
            for b in range(5)] == before
    assert main(["checkpoint", "validate", str(root / "cp"), "--sink", str(root / "out")]) == 0

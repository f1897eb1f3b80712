"""The fast slice of the chaos suite (``make chaos`` runs the whole of it): a seeded
workload checked against its batch oracle, then crash points, random SIGKILLs, disk
errors, a power cut (in the checkpoint and in the file sink's data), damaged checkpoint
files and stray temp files over the file sink and foreachBatch, each finishing with every
expected row exactly once; the oracles of the join and update-mode queries (the dedup
and update-mode queries run in ``make chaos``)."""

from __future__ import annotations

import errno
import os
import sys
from collections import Counter

import pytest

from unbounded.checkpoint import atomic
from unbounded.checkpoint.atomic import write_atomic, write_atomic_replace
from unbounded.files.manifest import FileSinkManifest
from unbounded.testing.checkpoint_faults import FaultyFileOps, parse_faults

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # the chaos package lives at the repository root, as bench does

from chaos import scenarios as sc  # noqa: E402
from chaos.corruption import corruption  # noqa: E402
from chaos.kafka import kafka_commit_cuts  # noqa: E402
from chaos.outputs import committed_rows  # noqa: E402
from chaos.report import Row  # noqa: E402
from chaos.supervisor import run_to_end  # noqa: E402
from chaos.workload import compare, expected_rows, generate  # noqa: E402

pytestmark = pytest.mark.timeout(120)
SIZE = sc.Size(files=5, per_file=80, repeats=1)
SEED = 20261206


def test_the_generator_is_seeded_and_marks_late_rows(tmp_path):
    one = generate(str(tmp_path / "a"), SEED, 4, 50)
    two = generate(str(tmp_path / "b"), SEED, 4, 50)
    assert one.rows.equals(two.rows)
    assert one.rows["id"].n_unique() == 200
    assert one.rows["late"].sum() > 0, "some rows arrive behind the watermark"
    per_key = one.rows.group_by("key").agg(n=one.rows["seq"].len())
    assert all(n > 0 for n in per_key["n"])


def test_compare_counts_lost_and_duplicated_rows():
    expected = Counter({(1,): 1, (2,): 1, (3,): 1})
    actual = Counter({(1,): 1, (2,): 2})
    assert compare(expected, actual) == (1, 1)


@pytest.mark.parametrize(("sink", "query"), [
    ("file", "stateless"), ("file", "windowed"), ("file", "join"),
])
def test_a_clean_run_equals_the_batch_oracle(tmp_path, sink, query):
    spec, work = sc.prepare(str(tmp_path), "clean", sink, query, SEED, size=SIZE)
    assert run_to_end(spec).returncode == 0
    rows = committed_rows(sink, query, spec.output)
    assert rows == expected_rows(work, query)
    assert rows, "the oracle expects output"


def test_a_committed_data_file_that_a_power_cut_emptied_counts_as_lost_and_silent(tmp_path):
    small = sc.Size(files=2, per_file=20, repeats=1)
    spec, work = sc.prepare(str(tmp_path), "emptied", "file", "stateless", SEED, size=small)
    assert run_to_end(spec).returncode == 0
    listed = FileSinkManifest(spec.output).all_files()
    os.truncate(listed[0], 0)  # what a cut does to a data file no fsync made durable
    row = Row("power loss in sink data", "file", "stateless")
    sc.check(row, spec, work, 0)
    assert (row.lost, row.silent) == (sum(expected_rows(work, "stateless").values()), 1)
    assert "committed output unreadable" in row.notes[0]


def test_the_update_mode_oracle_emits_running_totals_of_the_keys_each_batch_held(tmp_path):
    work = generate(str(tmp_path), SEED, 2, 3)
    rows = list(work.rows.select("id", "key").iter_rows())
    seen: dict[str, list[int]] = {}
    expected: Counter[tuple[object, ...]] = Counter()
    for batch in ([r for r in rows if r[0] < 3], [r for r in rows if r[0] >= 3]):
        for key in {k for _, k in batch}:
            seen.setdefault(key, [])
            ids = [i for i, k in batch if k == key]
            seen[key] += ids
            expected[(key, len(seen[key]), sum(seen[key]))] += 1
    assert expected_rows(work, "aggregate") == expected


def test_faulty_file_ops_fire_on_the_nth_matching_operation(tmp_path, monkeypatch):
    ops = FaultyFileOps(parse_faults("enospc:write:2:*/commits/*"))
    monkeypatch.setattr(atomic, "file_ops", ops)
    write_atomic(str(tmp_path / "commits" / "0"), b"a")
    write_atomic(str(tmp_path / "offsets" / "0"), b"a")
    with pytest.raises(OSError) as full:
        write_atomic(str(tmp_path / "commits" / "1"), b"b")
    assert full.value.errno == errno.ENOSPC
    assert sorted(os.listdir(tmp_path / "commits")) == ["0"], "no temp file is left"
    write_atomic(str(tmp_path / "commits" / "2"), b"c")  # the n-th only, without '+'
    assert ops.fired == [f"enospc:write:2:{tmp_path}/commits/1"]


def test_a_power_cut_loses_exactly_what_no_fsync_made_durable(tmp_path, monkeypatch):
    ops = FaultyFileOps([])
    monkeypatch.setattr(atomic, "file_ops", ops)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "1.delta").write_bytes(b"old")
    write_atomic(str(tmp_path / "commits" / "0"), b"durable")
    write_atomic_replace(str(tmp_path / "state" / "1.delta"), b"new", sync_dir=False)
    write_atomic_replace(str(tmp_path / "state" / "2.delta"), b"new", sync_dir=False)
    ops.lose_unsynced()
    assert (tmp_path / "commits" / "0").read_bytes() == b"durable"
    assert (tmp_path / "state" / "1.delta").read_bytes() == b"old"
    assert not (tmp_path / "state" / "2.delta").exists()
    temps = [p for p in (tmp_path / "state").iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 2, "the renamed-away temp files come back, as on a real disk"


@pytest.mark.parametrize(("scenario", "sink", "query"), [
    (sc.crash_points, "file", "windowed"),
    (sc.fs_faults, "file", "windowed"),
    (sc.power_loss, "foreach", "windowed"),
    (sc.power_loss_data, "file", "stateless"),
    (sc.random_kills, "file", "stateless"),
    (sc.clock_jumps, "file", "windowed"),
    (sc.stray_temps, "file", "windowed"),
])
def test_chaos_scenarios_lose_and_duplicate_nothing(tmp_path, scenario, sink, query):
    row = scenario(sink, query, SEED, root=str(tmp_path), size=SIZE)
    assert row.runs > 0 and row.faults > 0, row
    assert (row.lost, row.duplicated, row.silent) == (0, 0, 0), row.notes


def test_damaged_state_and_logs_are_detected_or_repaired_exactly(tmp_path):
    row = corruption("file", "windowed", SEED, root=str(tmp_path), size=SIZE,
                     kinds=["state delta", "sink manifest"], damages=["bit flip", "delete"])
    assert row.faults == 8
    assert row.detected == 8 and row.silent == 0, row.notes


def test_a_connection_cut_at_the_transaction_commit_loses_and_duplicates_nothing(tmp_path):
    pytest.importorskip("confluent_kafka")
    if os.environ.get("UNBOUNDED_TEST_KAFKA_BOOTSTRAP"):
        pytest.skip("the proxy needs a private broker")
    row = kafka_commit_cuts(SEED, root=str(tmp_path), size=SIZE)
    assert row.faults == 2, "the commit request was cut before and after the broker got it"
    assert (row.lost, row.duplicated, row.silent) == (0, 0, 0), row.notes

"""The session's query board: what runs' events leave for the pages."""

from __future__ import annotations

from unbounded.errors import AnalysisException
from unbounded.observe.ui_board import QueryBoard


def _progress(run_id: str, batch_id: int) -> dict[str, object]:
    return {"runId": run_id, "batchId": batch_id, "timestamp": "2024-01-01T00:00:00.000Z",
            "numInputRows": batch_id}


def test_a_failed_run_keeps_its_traceback_and_error_class():
    board = QueryBoard(extra={"uiUrl": "http://x"})
    board.started("q", "r", "n", "2024-01-01T00:00:00.000Z")
    board.progressed(_progress("r", 0))
    try:
        raise AnalysisException("[X] broken", error_class="X")
    except AnalysisException as error:
        board.terminated("r", error)
    doc = board.document("r")
    assert (doc["status"], doc["errorClass"], doc["uiUrl"]) == ("FAILED", "X", "http://x")
    assert doc["exception"].startswith("Traceback") and "[X] broken" in doc["exception"]
    assert doc["startMs"] == 1704067200000 and doc["endMs"] >= doc["startMs"]
    assert [b["batchId"] for b in doc["batches"]] == [0]


def test_only_the_newest_finished_runs_are_kept_and_each_change_is_announced():
    changed: list[str] = []
    board = QueryBoard(retained_finished=1)
    board.on_change(changed.append)
    for run in ("a", "b"):
        board.started("q", run, None, "2024-01-01T00:00:00.000Z")
        board.terminated(run, None)
    board.started("q", "c", None, "2024-01-01T00:00:00.000Z")
    board.progressed(_progress("unknown", 0))  # a run this board never saw: ignored
    assert [d["runId"] for d in board.documents()] == ["b", "c"]
    assert changed == ["a", "a", "b", "b", "a", "c"]  # "a" again when it is forgotten
    assert board.document("a") is None


def test_a_batch_point_is_built_when_first_asked_for_and_the_json_text_matches_the_document(
        monkeypatch):
    import json

    from unbounded.observe import ui_board

    built: list[object] = []
    real = ui_board.batch_point
    monkeypatch.setattr(ui_board, "batch_point", lambda p: built.append(p) or real(p))
    board = QueryBoard(retained_batches=2, extra={"uiUrl": "http://x"})
    board.started("q", "r", "n", "2024-01-01T00:00:00.000Z")
    for n in range(3):
        board.progressed(_progress("r", n))
    assert built == []  # nothing built while nobody looks
    assert json.loads(board.document_json("r")) == board.document("r")
    assert json.loads(board.document_json("r"))["batches"][1]["numInputRows"] == 2
    assert [p["batchId"] for p in built] == [1, 2]  # once each, the dropped batch never
    assert board.document_json("missing") is None

"""``make demo``'s two pipelines, run as the demo runs them (SIGKILL, restart, proof)."""

from __future__ import annotations

from rich.console import Console

from unbounded.demo import files, kafka


def test_file_demo_proves_exactly_once(tmp_path):
    console = Console(record=True, width=120)
    assert files.run_demo(console, str(tmp_path / "files"), files=12, per_file=2_000)
    text = console.export_text()
    assert "SIGKILL" in text and "PASS" in text


def test_kafka_demo_proves_exactly_once(tmp_path):
    console = Console(record=True, width=120)
    assert kafka.run_demo(console, str(tmp_path / "kafka"), count=60_000)
    text = console.export_text()
    assert "SIGKILL after" in text and "PASS" in text

"""One row of the chaos table per (scenario, sink, query), and the table itself."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Row", "render"]


@dataclass
class Row:
    """What a scenario did and found. ``detected``: faults the engine reported (a failed
    run naming the fault); ``silent``: runs that ended 0 with wrong output, or a
    corruption neither reported nor repaired exactly."""

    scenario: str
    sink: str
    query: str
    source: str = "files"
    runs: int = 0
    faults: int = 0
    lost: int = 0
    duplicated: int = 0
    detected: int = 0
    silent: int = 0
    recoveries_s: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == self.duplicated == self.silent == 0

    def percentile(self, q: float) -> str:
        if not self.recoveries_s:
            return "-"
        ordered = sorted(self.recoveries_s)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.2f}s"


_HEADER = ("scenario", "source", "sink", "query", "runs", "faults", "lost", "dup", "detected",
           "silent", "p50 rec", "p99 rec")


def _cells(row: Row) -> tuple[str, ...]:
    return (row.scenario, row.source, row.sink, row.query, str(row.runs), str(row.faults),
            str(row.lost), str(row.duplicated), str(row.detected), str(row.silent),
            row.percentile(0.5), row.percentile(0.99))


def render(rows: list[Row]) -> str:
    """A plain-text table, widths fitted to the cells."""
    table = [_HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
             for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

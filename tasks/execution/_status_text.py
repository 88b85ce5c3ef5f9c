"""A run group's progress and runs table as terminal text (`sweepflow status GROUP`).

Reads: the group's runs_status.yaml through its `StatusStore` (journal included, file lock
respected). Writes: nothing. The text comes from `templates/reports/status.txt.j2`; the rows
and counts are the same `tally` that the Prefect runs-table artifact shows.
"""

from __future__ import annotations

from typing import Any

from tasks.core._templating import render_template
from tasks.execution._sync import SyncReport, elapsed_clock, tally
from tasks.model._group import GroupRef, RunGroup

COLUMNS = ("run", "stage", "state", "attempts", "elapsed", "job", "reason")
BAR_WIDTH = 30
REASON_WIDTH = 70


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line per row, whatever the reason held
    return text if len(text) <= width else text[: width - 1] + "…"


def status_rows(report: SyncReport) -> list[dict[str, str]]:
    """One row of strings per stage, in runs_status.yaml's order."""
    return [
        {"run": r.run, "stage": r.stage, "state": r.state, "attempts": str(r.attempts),
         "elapsed": elapsed_clock(r.elapsed_s), "job": r.job_id or "", "reason": _cut(r.reason or "", REASON_WIDTH)}
        for r in report.rows
    ]


def status_context(group: GroupRef) -> dict[str, Any]:
    """What the template shows: the group, progress (done/total, percent, bar), state counts and rows."""
    group = RunGroup.of(group)
    report = tally(group.status.read())
    rows = status_rows(report)
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in COLUMNS}
    filled = round(BAR_WIDTH * report.progress / 100)
    return {
        "group": group.name,
        "folder": str(group.root),
        "done": report.done,
        "total": report.total,
        "percent": f"{report.progress:.0f}",
        "bar": "#" * filled + "." * (BAR_WIDTH - filled),
        "counts": sorted(report.counts.items()),
        "columns": COLUMNS,
        "widths": widths,
        "rows": rows,
    }


def status_text(group: GroupRef) -> str:
    """The progress line, the count of stages per state and the runs table of `group`, as plain text."""
    text = render_template("reports/status.txt.j2", **status_context(group))
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"

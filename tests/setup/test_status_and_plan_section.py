"""Setup keeps runs_status.yaml progress and runs_plan.md notes, and keeps one Setup section in runs_plan.md.

Stage progress (job ids, failures) survives setup, a missing status entry is added as pending,
the researcher's own notes in runs_plan.md stay, and a second setup changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.model._layout import PLAN_MD, STATUS_FILE
from tasks.model._status_file import StatusStore, load_status
from tasks.setup._experiment import SETUP_BEGIN, SETUP_END, set_up_group
from tests.support.setup_groups import NOW_TEXT, plan_of, snapshot

# ------------------------------------------------------------------ runs_status.yaml and runs_plan.md


def test_status_progress_and_plan_notes_survive_setup(group: Path) -> None:
    set_up_group(group)
    plan = plan_of(group)
    busy, other = plan.finetune_runs[0].name, plan.finetune_runs[1].name
    store = StatusStore(group / STATUS_FILE)

    def progress(status: Any) -> None:
        status.runs[busy].finetune.mark("submitted", job_id="12345", now=NOW_TEXT)
        status.runs[busy].evaluations["cap_epoch_1"].mark("failed", job_id="777", reason="OOM", now=NOW_TEXT)
        del status.runs[other].evaluations["cap_epoch_1"]  # an older file that lacks an entry

    store.update(progress, now=NOW_TEXT)
    with (group / PLAN_MD).open("a") as handle:
        handle.write("\n## My notes\n\nkeep me\n")

    report = set_up_group(group)
    assert report.status_entries_added == 1
    status = load_status(group / STATUS_FILE)
    finetune = status.runs[busy].finetune
    assert (finetune.status, finetune.job_id) == ("submitted", "12345")
    failed = status.runs[busy].evaluations["cap_epoch_1"]
    assert (failed.status, failed.job_id, failed.reason) == ("failed", "777", "OOM")
    assert status.runs[other].evaluations["cap_epoch_1"].status == "pending"
    assert {(run, key) for run, key, _ in status.stages()} == {
        (run.name, key) for run in plan.runs for key in ["finetune", *(job.key for job in run.evaluations)]
    }
    text = (group / PLAN_MD).read_text()
    assert text.count(SETUP_BEGIN) == text.count(SETUP_END) == 1 and text.endswith("## My notes\n\nkeep me\n")

    before = snapshot(group)
    assert set_up_group(group).status_entries_added == 0
    assert snapshot(group) == before

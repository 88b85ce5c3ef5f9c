"""The summary of an extended run group: new runs in, dropped runs out (unless asked), old logs still count.

A set-up fake-site group (2 models x ranks 4/64 + controls, tests/support/fake_scheduler.py) whose
runs finished with real inspect-ai logs (`mock_eval`) written under the first design's hash, then
extended with rank 16 and without rank 64.
"""

from __future__ import annotations

from pathlib import Path

from tasks.model._design_file import parse_design
from tasks.model._plan_file import load_plan
from tasks.model._status_file import StatusStore
from tasks.planning import build_plan, deliver_plan
from tasks.results._summarize import summarize
from tests.support.fake_scheduler import NOW, make_group
from tests.support.fakesite import DATE, design
from tests.support.finished_runs import mock_eval

M = "Llama-3.2-1B-Instruct"
R4, R64, R16, BASE = f"{M}_rank4", f"{M}_rank64", f"{M}_rank16", f"{M}_base"


def _finished(group: Path) -> None:
    digest = load_plan(group).design_hash
    for run, epoch, correct in ((R4, 1, 2), (R64, 1, 4), (BASE, "base", 1)):
        mock_eval(group, run, epoch, correct, digest)

    def done(status) -> None:
        for _, _, stage in status.stages():
            if stage.status != "skipped":
                stage.mark("completed")

    StatusStore(group / "runs_status.yaml").update(done)


def test_extended_summary_keeps_old_results_and_leaves_dropped_runs_out(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    _finished(group)
    data = design(tmp_path, factors={"lora_rank": [4, 16]})
    data["evaluation"]["epochs"] = "all"
    deliver_plan(build_plan(parse_design(data), date=DATE), NOW)
    mock_eval(group, R16, 1, 3, load_plan(group).design_hash)  # a new run, under the new design's hash

    summary = summarize(group)
    scored = {(r.run, r.epoch): r.accuracy for r in summary.results if r.accuracy is not None}
    assert scored[(R4, 1)] == 0.5 and scored[(BASE, None)] == 0.25  # the first design's logs still count
    assert scored[(R16, 1)] == 0.75
    assert all(r.run != R64 for r in summary.results)
    assert "dropped" not in summary.state_counts
    assert any("dropped from the design are left out" in note for note in summary.notes)

    everything = summarize(group, include_dropped=True)
    assert {(r.run, r.epoch): r.accuracy for r in everything.results if r.run == R64 and r.accuracy} == {(R64, 1): 1.0}
    assert everything.state_counts["dropped"] > 0

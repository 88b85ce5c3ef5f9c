"""The accuracy a plan promises: the measured error of this site's earlier estimates, not a fixed margin."""

from __future__ import annotations

from pathlib import Path

import yaml

from tasks.model._design_file import parse_design
from tasks.planning._accuracy import accuracy_text
from tasks.planning._plan_markdown import render_plan_markdown
from tasks.planning._planner import build_plan
from tests.support.setup_groups import planned


def _finish(group: Path, run: str, elapsed_s: float, attempts: int = 1) -> None:
    path = group / "runs_status.yaml"
    status = yaml.safe_load(path.read_text())
    stage = status["runs"][run]["finetune"]
    stage.update(status="completed", job_id="100",
                 attempts=[{"job_id": str(100 + i), "elapsed_s": elapsed_s} for i in range(attempts)])
    path.write_text(yaml.safe_dump(status))


def test_the_promise_is_the_measured_error_of_earlier_estimates(fake_site) -> None:
    design = fake_site.design(name="first")
    group = planned(design, base=fake_site.root)
    out = group.parent
    assert "not yet measured" in accuracy_text([out])
    plan = yaml.safe_load((group / "experiment.yaml").read_text())
    runs = [name for name, r in plan["estimates"]["runs"].items() if r["train_minutes"] > 0]
    estimate = [plan["estimates"]["runs"][r]["train_minutes"] for r in runs[:2]]
    _finish(group, runs[0], estimate[0] * 60 * 2)  # took twice the estimate: off by 50 % of the actual
    _finish(group, runs[1], estimate[1] * 60 / 0.8)  # estimate 20 % short of the actual
    _finish(group, runs[2], 1.0, attempts=2)  # retried: its time is not the estimate's, left out
    text = accuracy_text([out])
    assert "off by 35 % on average (worst 50 %) on 2 completed fine-tune(s) of 1 earlier run group(s)" in text

    again = build_plan(parse_design(fake_site.design(name="second"), base=fake_site.root), date="2026-01-03")
    assert again.estimates.accuracy == text
    markdown = render_plan_markdown(again)
    assert text in markdown and "±10" not in markdown

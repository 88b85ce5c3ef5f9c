"""Learning from prior runs: a finished run group's logs feed the next plan's estimates.

plan -> deliver -> setup a group; fake a completed fine-tune (a real torchtune 0.6.1 SLURM log
from tests/fixtures/prior_runs copied into its run folder, plus epoch_N/ checkpoints); record its
measured figures; plan a similar design again (no `paths.prior_runs`): its estimates name that
log as their source, and runs_plan.md says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tasks.execution._submit import submit_pending
from tasks.execution._sync import sync_jobs
from tasks.model._design_file import parse_design
from tasks.model._layout import MEASURED_FILE
from tasks.model._status_file import StatusStore
from tasks.planning._plan_markdown import render_plan_markdown
from tasks.planning._planner import build_plan, prior_run_folders
from tasks.results._measured import record_measurements
from tests.support.fake_scheduler import FakeScheduler, cluster, make_group
from tests.support.fakesite import DATE, design
from tests.support.paths import FIXTURES_DIR

PRIOR = FIXTURES_DIR / "prior_runs"
DONE_LOG = PRIOR / "cap_5L_sweep_2025-09-30" / "Llama-3.2-1B-Instruct_5L_rank64" / "slurm-4812345.out"
UNFINISHED_LOG = PRIOR / "old_attempts" / "Llama-3.1-8B-Instruct_rank8" / "slurm-4790001.out"
RUN, OTHER = "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank4"


def _finished_group(root: Path) -> tuple[Path, Path]:
    """A run group in which RUN completed (log + checkpoints) and OTHER died half-way."""
    group = make_group(root)
    fake = FakeScheduler()
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    status = StatusStore(group / "runs_status.yaml").read()
    job = status.stage(RUN).job_id
    log = group / RUN / f"slurm-{job}.out"
    shutil.copy(DONE_LOG, log)
    for epoch in (0, 1):
        (group / RUN / f"epoch_{epoch}").mkdir()
        (group / RUN / f"epoch_{epoch}" / "model-00001-of-00001.safetensors").write_bytes(b"w" * 4096)
    fake.finish(job, "COMPLETED", elapsed_s=700.0, exit_code="0:0")
    shutil.copy(UNFINISHED_LOG, group / OTHER / f"slurm-{status.stage(OTHER).job_id}.out")
    fake.finish(status.stage(OTHER).job_id, "TIMEOUT", elapsed_s=900.0, exit_code="0:15")
    sync_jobs(group, fake)
    return group, log


def test_completed_runs_are_recorded(tmp_path: Path) -> None:
    group, log = _finished_group(tmp_path)
    path = record_measurements(group)
    assert path == group / MEASURED_FILE
    assert path.read_text().startswith("# What the completed fine-tunes of run group")
    [record] = yaml.safe_load(path.read_text())["runs"]  # the timed-out run is not recorded
    assert record["run"] == RUN and record["log"] == str(log) and record["model"] == "Llama-3.2-1B-Instruct"
    assert (record["speed_it_s"], record["peak_memory_gib"], record["batch_size"]) == (4.35, 15.27, 4)  # steps / the bars' elapsed time
    assert record["job_elapsed_s"] == 700.0 and record["train_elapsed_s"] == 84.0
    # its log timed 2 saves (6.41 s, 7.41 s): the rest of 700 - 84 s is start-up, once per job
    assert (record["checkpoint_save_s"], record["startup_s"], record["validation_pass_s"]) == (6.91, 602.2, None)
    assert record["checkpoint_gib_per_epoch"] > 0 and record["usable_for_estimates"] is True


def test_nothing_recorded_before_a_run_completes(tmp_path: Path) -> None:
    assert record_measurements(make_group(tmp_path)) is None
    assert not (make_group(tmp_path / "b") / MEASURED_FILE).exists()


def test_the_next_plan_estimates_from_the_finished_run(tmp_path: Path) -> None:
    first = build_plan(parse_design(design(tmp_path, name="again")), date=DATE)
    assert all(m.speed_it_s.source == "default, preliminary" for m in first.estimates.per_model.values())

    _, log = _finished_group(tmp_path)
    data = design(tmp_path, name="exp_followup")  # a similar design, same site; no paths.prior_runs
    assert prior_run_folders(parse_design(data).paths) == ([tmp_path / "out"], True)
    plan = build_plan(parse_design(data), date=DATE)
    one = plan.estimates.per_model["Llama-3.2-1B-Instruct"]
    assert one.speed_it_s.source.startswith(f"prior log {log}, as ")  # converted by tokens per second
    assert one.peak_memory_gib and one.peak_memory_gib.source == f"prior log {log}"
    assert one.batch_size.source == f"prior log {log}"  # "auto" batch size from its peak memory
    three = plan.estimates.per_model["Llama-3.2-3B-Instruct"]
    assert three.speed_it_s.source.startswith(f"scaled from Llama-3.2-1B-Instruct prior log {log}")
    assert not any("4790001" in f.source for m in plan.estimates.per_model.values()
                   for f in (m.speed_it_s, m.batch_size, m.checkpoint_gib_per_epoch))  # unfinished: not learned from
    assert any("earlier run groups" in note and "1 completed fine-tune log" in note for note in plan.estimates.notes)
    text = render_plan_markdown(plan)
    assert f"prior log {log}" in text and "earlier run groups" in text


def test_named_prior_run_folders_are_searched_instead(tmp_path: Path) -> None:
    _finished_group(tmp_path)
    data = design(tmp_path, name="exp_named")
    data["paths"]["prior_runs"] = [str(PRIOR / "cap_5L_sweep_2025-09-30")]
    plan = build_plan(parse_design(data), date=DATE)
    source = plan.estimates.per_model["Llama-3.2-1B-Instruct"].speed_it_s.source
    assert source.startswith(f"prior log {DONE_LOG}, as ")
    assert not any("earlier run groups" in note for note in plan.estimates.notes)

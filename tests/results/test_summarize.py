"""summarize-experiment: results table, base deltas, loss, estimated vs actual, GPU-hours, plots.

A real run group (fakesite -> build_plan -> deliver_plan -> setup_experiment), launched against
`FakeScheduler` and synced, with one OOM failure retried through the real retry path, one failed
fine-tune and one still running. The `.eval` logs are REAL inspect-ai logs: `inspect_ai.eval()`
run in-process on a 4-sample task with the `mockllm/model` provider, whose outputs fix the
accuracy. The fine-tune logs are a torchtune 0.6.1 SLURM log from tests/fixtures/prior_runs and a
DiskLogger metric file in torchtune's format (both written by tests/support/finished_runs.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.execution import retry_run, submit_pending
from tasks.execution._sync import sync_jobs
from tasks.model._plan_file import load_plan
from tasks.results._summarize import BASE_LEVEL, render_summary, summarize, write_summary
from tests.support.fake_scheduler import FakeScheduler, cluster, make_group
from tests.support.finished_runs import DISK_LOSSES, mock_eval, stage_job_id, write_training_outputs

A, B = "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64"
C, D = "Llama-3.2-3B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank64"
BASE1, BASE3 = "Llama-3.2-1B-Instruct_base", "Llama-3.2-3B-Instruct_base"


def _error_log(group: Path, run: str, epoch: int) -> Path:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSpec, write_eval_log

    spec = EvalSpec(created="2026-01-02T00:00:00+00:00", task="cap", dataset=EvalDataset(), model="hf/x",
                    config=EvalConfig(), metadata={"run": run, "epoch": epoch, "is_finetuned": True})
    path = group / run / "evaluations" / "cap" / "logs" / f"zz-error-{run}-{epoch}.eval"
    write_eval_log(EvalLog(status="error", eval=spec), str(path))
    return path


@pytest.fixture(scope="module")
def group(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("summary")
    group = make_group(root)
    fake, nap = FakeScheduler(), (lambda s: None)
    submit_pending(group, fake, cluster(), sleep=nap)
    digest = load_plan(group).design_hash

    # A: OOM after 600 s, retried with a smaller batch (real retry path), then completes in 1800 s
    fake.finish(stage_job_id(group, A), "OUT_OF_MEMORY", elapsed_s=600.0, node="gpu1", exit_code="0:125")
    sync_jobs(group, fake)
    assert retry_run(group, A, fake, cluster(), sleep=nap).job_id
    write_training_outputs(group, A, stage_job_id(group, A), disk_logger=True)
    fake.finish(stage_job_id(group, A), "COMPLETED", elapsed_s=1800.0, exit_code="0:0")
    # B: completes in 1200 s; loss only in the SLURM log's training bars
    write_training_outputs(group, B, stage_job_id(group, B), disk_logger=False)
    fake.finish(stage_job_id(group, B), "COMPLETED", elapsed_s=1200.0, exit_code="0:0")
    # C fails after 120 s (not retried); D is still running
    fake.finish(stage_job_id(group, C), "FAILED", elapsed_s=120.0, exit_code="1:0")
    for epoch in (0, 1):  # kill-on-invalid-dep: its evaluations are cancelled at once
        fake.finish(stage_job_id(group, C, f"cap_epoch_{epoch}"), "CANCELLED")
    fake.finish(stage_job_id(group, D), "RUNNING", elapsed_s=300.0)
    sync_jobs(group, fake)

    old = mock_eval(group, A, 1, 1, digest)  # an older successful log of the same job: superseded
    os.utime(old, (1_000_000_000, 1_000_000_000))
    scores = {(A, 0): 2, (A, 1): 4, (B, 0): 2, (B, 1): 3, (BASE1, "base"): 1, (BASE3, "base"): 2}
    for (run, epoch), correct in scores.items():
        mock_eval(group, run, epoch, correct, digest)
    for run, epoch in scores:
        key = "cap" if epoch == "base" else f"cap_epoch_{epoch}"
        fake.finish(stage_job_id(group, run, key), "COMPLETED", elapsed_s=90.0, exit_code="0:0")
    sync_jobs(group, fake)
    newer_error = _error_log(group, A, 1)  # e.g. a crashed manual re-run: newest, but not successful
    os.utime(newer_error, (4_000_000_000, 4_000_000_000))
    return group


def _row(summary, run: str, epoch):
    return next(r for r in summary.results if r.run == run and r.epoch == epoch)


def test_results_table_numbers_and_base_delta(group: Path) -> None:
    s = summarize(group)
    a1 = _row(s, A, 1)
    assert a1.accuracy == 1.0 and a1.completed_samples == 4 and a1.total_samples == 4
    assert a1.metric == "match/accuracy" and a1.log is not None and "zz-error" not in a1.log.name
    assert a1.delta_vs_base == pytest.approx(0.75)  # base 1B: 1 of 4
    assert _row(s, A, 0).accuracy == 0.5 and _row(s, B, 1).delta_vs_base == pytest.approx(0.5)
    assert _row(s, BASE3, None).accuracy == 0.5 and _row(s, BASE3, None).delta_vs_base is None
    c0 = _row(s, C, 0)  # failed fine-tune: no number, the reason from runs_status.yaml
    assert c0.accuracy is None and c0.reason == "cancelled: fine-tune failed"
    assert _row(s, D, 1).accuracy is None and _row(s, D, 1).state == "submitted"
    [d1] = [d for d in s.deltas if d.model == "Llama-3.2-1B-Instruct"]
    assert (d1.base_accuracy, d1.best_run, d1.best_epoch, d1.best_accuracy) == (0.25, A, 1, 1.0)
    assert d1.best_delta == pytest.approx(0.75) and d1.mean_delta == pytest.approx((0.75 + 0.5) / 2)
    [d3] = [d for d in s.deltas if d.model == "Llama-3.2-3B-Instruct"]
    assert d3.runs == 0 and d3.best_delta is None and d3.reason == "no fine-tuned run has an accuracy yet"
    rows = {(r["run"], r["epoch"]): r for r in s.table()}
    assert rows[(A, "1")] == {"run": A, "task": "cap", "epoch": "1", "accuracy": "1.000", "samples": "4/4",
                              "delta vs base": "+0.750", "note": ""}
    assert rows[(C, "0")]["accuracy"] == "n/a" and rows[(C, "0")]["note"]


def test_training_loss_from_disk_logger_and_from_bars(group: Path) -> None:
    s = summarize(group)
    assert s.curves[A].steps == [10, 20, 30, 40, 50] and s.curves[A].losses == DISK_LOSSES
    loss = {r.run: r for r in s.losses}
    assert loss[A].first == 2.5 and loss[A].final == pytest.approx(1.5) and loss[A].minimum == 0.5
    assert loss[B].steps == 356 and loss[B].final < loss[B].first  # parsed from `1|10|Loss: x` bars
    assert loss[C].steps == 0 and "failed" in (loss[C].reason or "")


def test_estimated_vs_actual_and_gpu_hours_include_failed_attempts(group: Path) -> None:
    s = summarize(group)
    res = {r.run: r for r in s.resources}
    a = res[A]
    assert (a.attempts, a.failed_attempts, a.state) == (2, 1, "completed")
    assert a.train_minutes == pytest.approx(30.0) and a.train_minutes_all == pytest.approx(40.0)
    assert a.peak_memory_gib == 15.27 and a.speed_it_s == 4.35  # from the torchtune log (steps / bar time)
    assert a.batch_size_used is not None and a.batch_size_used < a.batch_size_est  # the OOM retry halved it
    assert a.eval_minutes == pytest.approx(3.0) and a.train_minutes_est and a.gpu_hours_est
    assert a.gpu_hours == pytest.approx((600 + 1800 + 2 * 90) / 3600)
    assert a.failed_gpu_hours == pytest.approx(600 / 3600)
    assert res[C].gpu_hours == pytest.approx(120 / 3600) and res[C].failed_gpu_hours == res[C].gpu_hours
    assert res[C].train_minutes is None and res[C].reason.startswith("job failed (FAILED, exit 1:0)")
    assert (res[D].state, res[D].attempts, res[D].failed_attempts, res[D].failed_gpu_hours) == ("running", 1, 0, 0.0)
    rank = {g.level: g for g in s.gpu_hours if g.factor == "lora_rank"}
    assert rank["rank4"].gpu_hours == pytest.approx((600 + 1800 + 180 + 120) / 3600)
    assert rank["rank4"].failed_gpu_hours == pytest.approx((600 + 120) / 3600)
    assert (rank["rank4"].attempts, rank["rank4"].failed_attempts) == (3, 2)
    assert rank["rank64"].gpu_hours == pytest.approx((1200 + 180 + 300) / 3600)  # D still running: counted
    assert rank["rank64"].failed_gpu_hours == 0 and rank["rank64"].failed_attempts == 0
    assert rank[BASE_LEVEL].gpu_hours == pytest.approx(180 / 3600)
    model = {g.level: g for g in s.gpu_hours if g.factor == "model"}
    assert sum(g.gpu_hours for g in model.values()) == pytest.approx(s.gpu_hours_total)
    assert s.gpu_hours_total == pytest.approx((600 + 1800 + 1200 + 120 + 300 + 6 * 90) / 3600)

    # estimate error: (estimated - actual) / actual, for completed fine-tunes and every run's evaluations
    assert a.train_error_pct == round((a.train_minutes_est - 30.0) / 30.0 * 100, 1)
    assert a.eval_error_pct == round((a.eval_minutes_est - 3.0) / 3.0 * 100, 1)
    assert res[C].train_error_pct is None and res[D].train_error_pct is None  # failed / still running
    train_errors = [abs(r.train_error_pct) for r in s.resources if r.train_error_pct is not None]
    assert s.mean_abs_error_pct("train") == (round(sum(train_errors) / len(train_errors), 1), len(train_errors))
    text = render_summary(s)
    section = text[text.index("### Estimate error"):text.index("## GPU-hours per factor level")]
    assert f"| {A} | {a.train_minutes_est:.1f} / 30.0 | {a.train_error_pct:+.0f} % |" in section
    assert f"training {s.mean_abs_error_pct('train')[0]:.0f} % over {len(train_errors)} runs" in section


def test_write_summary_markdown_and_pngs(group: Path) -> None:
    paths = write_summary(group)
    assert paths[0] == group / "summary.md"
    assert {p.relative_to(group).as_posix() for p in paths[1:]} == {
        "results/samples.csv", "results/effects.csv", "results/replicates.csv",
        "plots/loss_curves.png", "plots/accuracy_by_model.png", "plots/accuracy_by_lora_rank.png",
        "plots/interaction_model_x_lora_rank.png"}
    for png in (p for p in paths[1:] if p.suffix == ".png"):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    text = paths[0].read_text()
    assert f"| {A} | cap | 1 | 1.000 | " in text and "| 4/4 | +0.750 |" in text
    assert f"| {C} | cap | 0 | - | - | - | - | cancelled: fine-tune failed |" in text  # "-" and the reason
    assert "![Training loss per run](plots/loss_curves.png)" in text
    assert "### lora_rank" in text and "| rank4 | 2 | 3 | 2 |" in text
    assert "{{" not in text and "None" not in text


def test_summary_of_a_fresh_group_has_dashes_not_errors(run_group: Path) -> None:
    group = run_group
    s = summarize(group)
    assert all(r.accuracy is None and r.reason == "not submitted yet" for r in s.results)
    assert s.gpu_hours_total == 0 and not s.curves
    paths = write_summary(group)
    assert all(p.exists() for p in paths)


@pytest.mark.prefect
@pytest.mark.slow
def test_flow_publishes_artifacts(group: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.testing.utilities import prefect_test_harness

    from flows.summarize_experiment import summarize_experiment

    with prefect_test_harness(server_startup_timeout=60):
        state = summarize_experiment(str(group), return_state=True)
        assert state.is_completed(), state.message
        assert state.result() == str(group / "summary.md")
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    keys = {a.key: a for a in found if a.key}
    assert set(keys) == {"summary-exp-2026-01-02", "results-exp-2026-01-02", "effects-exp-2026-01-02"}
    assert keys["effects-exp-2026-01-02"].type == "table"
    assert (group / "measured_runs.yaml").exists()


def test_comparisons_are_paired_and_incomplete_cells_get_no_number(group: Path) -> None:
    s = summarize(group)
    assert s.analysis is not None
    rows = {(e.contrast, e.epoch): e for e in s.analysis.effects}
    # A at epoch 1 answers all 4 words, its base model the first one: 3 discordant pairs, all one way
    a1 = rows[(f"{A} - {BASE1} (base)", "1")]
    assert a1.estimate == pytest.approx(0.75) and a1.n_items == 4 and a1.n_replicates == 1
    assert a1.p_value == pytest.approx(2 * 0.5**3) and "exact McNemar" in a1.method
    assert a1.ci_low is not None and a1.ci_low <= 0.75 <= a1.ci_high
    # C failed and D still runs: no number for them; the factor effects are over A and B only, and say so
    c1 = rows[(f"{C} - {BASE3} (base)", "1")]
    assert c1.estimate is None and c1.p_value is None and "cancelled: fine-tune failed" in c1.note
    factors = [e for e in s.analysis.effects if e.kind != "vs base"]
    assert factors and all("unbalanced: no usable run of 2 of 4 cells" in e.note for e in factors)
    assert all(f"{C} (" in e.note and f"{D} (" in e.note for e in factors)
    rank1 = next(e for e in factors if e.epoch == "1" and e.contrast.startswith("lora_rank"))
    assert rank1.estimate == pytest.approx(3 / 4 - 4 / 4) and "unbalanced" in rank1.method  # B - A, 1B only
    assert "only if the factors do not interact" in rank1.note
    model1 = next(e for e in factors if e.epoch == "1" and e.contrast.startswith("model"))
    assert model1.estimate is None and "only Llama-3.2-1B-Instruct of model has usable runs" in model1.note
    text = render_summary(s)
    support = text[text.index("## What the data support"):text.index("## Comparisons")]
    assert "Not compared (the data are incomplete; no number is given)" in support
    assert f"`{C} - {BASE3} (base)` at epoch 1: {C} (cap, epoch 1): cancelled: fine-tune failed" in support
    assert "Seed variance is unmeasured (`replicates: 1`)" in support
    assert f"`{A} - {BASE1} (base)` at epoch 1: +0.750" in support  # within noise at 4 items
    rank_lines = [line for line in support.splitlines() if line.startswith("- `lora_rank")]
    assert rank_lines and all("unbalanced: no usable run of 2 of 4 cells" in line for line in rank_lines)


def test_a_level_whose_runs_are_not_all_scored_is_marked_partial(group: Path) -> None:
    from tasks.results._plots import _runs_at, level_accuracies, level_interval

    s = summarize(group)
    rank4 = _runs_at(s, "cap", {"lora_rank": "rank4"})  # A (scored) and C (failed)
    values, complete = level_accuracies(s, "cap", rank4)
    assert sorted(rank4) == sorted([A, C]) and values == [1.0] and not complete
    assert level_interval(s, "cap", rank4) is None
    assert level_accuracies(s, "cap", _runs_at(s, "cap", {"model": "Llama-3.2-1B-Instruct"}))[1]

"""Retries by cause: the policy, its application to finetune.yaml/status, and resubmission with re-chaining.

Against `FakeScheduler` on a real run group. The slow test resumes a real (tiny, CPU) torchtune
run from the config sweepflow writes after a TIMEOUT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.backends import JobOverrides, SubmitError
from tasks.core._durations import parse_duration, scale_duration
from tasks.execution import apply_remedy, plan_retry, retry_failed
from tasks.execution._retry_policy import RetryContext, decide
from tasks.execution._sync import sync_jobs
from tasks.model._status_file import StatusStore
from tasks.planning._time_limits import finetune_time_limit
from tasks.setup._experiment import set_up_group
from tasks.setup._materialize import read_manifest
from tasks.training._overrides import RECIPE_STATE, resumable_epoch
from tests.support.fake_scheduler import FakeScheduler, cluster
from tests.support.setup_groups import plan_of

RUN = "Llama-3.2-1B-Instruct_rank4"  # batch 4, accumulation 1, 2 epochs


def ctx(**changes) -> RetryContext:
    return RetryContext(**{"batch_size": 16, "gradient_accumulation_steps": 1, "time_limit": "04:00:00",
                           "default_time_limit": "04:00:00", "epochs": 3, **changes})


# ---------------------------------------------------------------------------- decide (pure)


@pytest.mark.parametrize(("bs", "ga", "new_bs", "new_ga"), [(16, 1, 8, 2), (8, 4, 4, 8), (6, 1, 3, 2), (3, 2, 1, 6), (2, 3, 1, 6)])
def test_oom_keeps_the_effective_batch(bs: int, ga: int, new_bs: int, new_ga: int) -> None:
    remedy = decide("oom", 1, 3, ctx(batch_size=bs, gradient_accumulation_steps=ga))
    assert remedy.kind == "resubmit_smaller_batch" and remedy.resume_epoch is None
    assert (remedy.batch_size, remedy.gradient_accumulation_steps) == (new_bs, new_ga)
    assert remedy.batch_size * remedy.gradient_accumulation_steps == bs * ga


def test_oom_description_and_batch_one() -> None:
    assert decide("oom", 1, 3, ctx()).description == "OOM: batch 16→8, grad accumulation 1→2 (effective batch 16 unchanged)"
    stuck = decide("oom", 1, 3, ctx(batch_size=1, gradient_accumulation_steps=16))
    assert stuck.kind == "none" and "batch size 1" in stuck.description


def test_timeout_resumes_with_more_time() -> None:
    remedy = decide("timeout", 1, 3, ctx(resumable_epoch=1))
    assert remedy.kind == "resume_more_time" and remedy.resume_epoch == 1 and remedy.time_multiplier == 2.0
    assert remedy.overrides() == JobOverrides(time_limit="08:00:00") and remedy.batch_size == 16
    fresh = decide("timeout", 1, 3, ctx(time_limit="1-12:00:00"))
    assert fresh.resume_epoch is None and fresh.time_limit == "3-00:00:00" and "restart" in fresh.description


@pytest.mark.parametrize(("text", "seconds"), [("90", 5400), ("1:30", 90), ("04:00:00", 14400), ("2-3", 183600), ("1-02:03", 93780), ("1-0:0:1", 86401)])
def test_slurm_time_limits(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(scale_duration(text, 2)) == 2 * seconds


def test_node_failure_excludes_the_node_and_keeps_earlier_ones() -> None:
    remedy = decide("node", 2, 3, ctx(node="gpu7", excluded_nodes=["gpu3"], time_limit="08:00:00"))
    assert remedy.kind == "resubmit_exclude_node" and remedy.batch_size == 16
    assert remedy.overrides() == JobOverrides(time_limit="08:00:00", exclude_nodes=["gpu3", "gpu7"])  # as is: the longer limit stays


@pytest.mark.parametrize("cause", ["cancelled", "error", "launch", "dependency", "environment", None])
def test_never_retried(cause: str | None) -> None:
    assert decide(cause, 1, 3, ctx()).kind == "none"


def test_max_attempts() -> None:
    assert decide("oom", 2, 3, ctx()).retry
    last = decide("oom", 3, 3, ctx())
    assert not last.retry and "3 of 3 attempts" in last.description


# ---------------------------------------------------------------------------- with a run group


def _store(group: Path) -> StatusStore:
    return StatusStore(group / "runs_status.yaml")


def _fail_finetune(group: Path, fake: FakeScheduler, raw: str, **fields) -> str:
    job = _store(group).read().stage(RUN).job_id
    fake.finish(job, raw, **fields)
    sync_jobs(group, fake)
    return job


def test_oom_retry_rewrites_config_and_status_and_rechains(launched) -> None:
    group, fake = launched
    old_evals = [s["id"] for s in fake.submits if s["name"].startswith(f"{RUN}__")]
    old = _fail_finetune(group, fake, "OUT_OF_MEMORY", node="gpu1", exit_code="0:125")
    [outcome] = retry_failed(group, fake, cluster(), sleep=lambda s: None)
    assert outcome.remedy.kind == "resubmit_smaller_batch" and outcome.job_id
    config = yaml.safe_load((group / RUN / "finetune.yaml").read_text())
    assert (config["batch_size"], config["gradient_accumulation_steps"]) == (2, 2)
    assert config["resume_from_checkpoint"] is False
    assert yaml.safe_load((group / RUN / "setup_finetune.yaml").read_text())["batch_size"] == 2
    ft = _store(group).read().stage(RUN)
    assert ft.status == "submitted" and ft.job_id == outcome.job_id
    assert ft.overrides.batch_size == 2 and ft.overrides.gradient_accumulation_steps == 2
    first, second = ft.attempts
    assert (first.job_id, first.scheduler_state, first.cause, first.node) == (old, "OUT_OF_MEMORY", "oom", "gpu1")
    assert first.remedy.startswith("OOM: batch 4→2") and first.exit_code == "0:125" and first.finished
    assert (second.batch_size, second.gradient_accumulation_steps) == (2, 2)
    assert set(old_evals) <= set(fake.cancelled)  # waiting evaluations of the failed job are cancelled
    for epoch in (0, 1):
        [_, new] = fake.by_name(f"{RUN}__eval_epoch_{epoch}")
        assert new["after_ok"] == [outcome.job_id]  # re-chained to the new fine-tune
        assert _store(group).read().stage(RUN, f"cap_epoch_{epoch}").job_id == new["id"]
    # setup-experiment again: the manifest knows the new file (no "edit"), and the override is kept
    manifest = read_manifest(group)
    assert f"{RUN}/finetune.yaml" in manifest
    before = (group / RUN / "finetune.yaml").read_bytes()
    report = set_up_group(group)
    actions = {c.path: c.action for c in report.changes}
    # the resubmitted fine-tune's stage is started: setup leaves its config as it was submitted
    assert f"{RUN}/finetune.yaml" not in actions and report.kept_started > 0
    assert (group / RUN / "finetune.yaml").read_bytes() == before
    assert retry_failed(group, fake, cluster()) == []  # decided once


def test_timeout_retry_resumes_with_more_time(launched) -> None:
    group, fake = launched
    run_dir = group / RUN
    (run_dir / "epoch_0").mkdir()
    (run_dir / "epoch_0" / "adapter_model.pt").write_bytes(b"x")
    (run_dir / "epoch_0" / "model-00001-of-00001.safetensors").write_bytes(b"x")
    (run_dir / "recipe_state").mkdir()
    (run_dir / RECIPE_STATE).write_bytes(b"x")
    assert resumable_epoch(run_dir) == 0
    # epoch 0's evaluation finished before the time ran out
    e0 = _store(group).read().stage(RUN, "cap_epoch_0").job_id
    _fail_finetune(group, fake, "TIMEOUT", node="gpu2", elapsed_s=14400.0)
    fake.finish(e0, "CANCELLED")  # killed with its failed dependency
    sync_jobs(group, fake)
    [outcome] = retry_failed(group, fake, cluster(), sleep=lambda s: None)
    assert outcome.remedy.kind == "resume_more_time"
    plan = plan_of(group)
    script_limit = finetune_time_limit(plan, plan.run(RUN), cluster()).limit  # the run's own --time
    assert f"#SBATCH --time={script_limit}" in (run_dir / "finetune.slurm").read_text()
    doubled = scale_duration(script_limit, 2)
    new = fake.submits[-3]
    assert new["name"] == RUN and new["overrides"] == JobOverrides(time_limit=doubled)
    config = yaml.safe_load((run_dir / "finetune.yaml").read_text())
    assert config["resume_from_checkpoint"] is True
    assert config["checkpointer"]["recipe_checkpoint"] == RECIPE_STATE
    assert config["checkpointer"]["adapter_checkpoint"] == "epoch_0/adapter_model.pt"
    assert config["checkpointer"]["checkpoint_dir"] != str(run_dir)  # base weights still from the model folder
    by_epoch = {s["name"]: s for s in fake.submits[-2:]}
    assert by_epoch[f"{RUN}__eval_epoch_0"]["after_ok"] == []  # its checkpoint exists: starts at once
    assert by_epoch[f"{RUN}__eval_epoch_1"]["after_ok"] == [outcome.job_id]
    ft = _store(group).read().stage(RUN)
    assert ft.overrides.resume_epoch == 0 and ft.attempts[-1].time_limit == doubled
    assert ft.attempts[0].elapsed_s == 14400.0 and ft.attempts[0].cause == "timeout"


def test_node_failure_retry_excludes_the_node(launched) -> None:
    group, fake = launched
    _fail_finetune(group, fake, "NODE_FAIL", node="gpu7")
    [outcome] = retry_failed(group, fake, cluster(), sleep=lambda s: None)
    assert outcome.remedy.kind == "resubmit_exclude_node"
    assert fake.by_name(RUN)[-1]["overrides"] == JobOverrides(exclude_nodes=["gpu7"])
    assert yaml.safe_load((group / RUN / "finetune.yaml").read_text())["batch_size"] == 4  # as is
    assert _store(group).read().stage(RUN).attempts[-1].exclude == "gpu7"


def test_user_cancel_and_code_errors_are_not_retried(launched) -> None:
    group, fake = launched
    _fail_finetune(group, fake, "CANCELLED by 1000", node="gpu1", elapsed_s=30.0)
    other = "Llama-3.2-3B-Instruct_rank4"
    job = _store(group).read().stage(other).job_id
    (group / other / f"slurm-{job}.out").write_text("Traceback ...\nKeyError: 'output'\n")
    fake.finish(job, "FAILED", exit_code="1:0", node="gpu2")
    sync_jobs(group, fake)
    before = len(fake.submits)
    outcomes = {o.run: o for o in retry_failed(group, fake, cluster())}
    assert len(fake.submits) == before and all(o.job_id is None for o in outcomes.values())
    status = _store(group).read()
    assert status.stage(RUN).status == "cancelled"  # a user's cancel is not a failure to retry
    assert RUN not in outcomes
    assert outcomes[other].remedy.kind == "none"
    assert status.stage(other).attempts[-1].remedy.startswith("not retried: code or data error")
    assert "code or data error" in status.stage(other).reason


def test_max_attempts_stops_retrying(launched) -> None:
    group, fake = launched
    for attempt in range(3):
        _fail_finetune(group, fake, "OUT_OF_MEMORY")
        [outcome] = retry_failed(group, fake, cluster(), max_attempts=3, sleep=lambda s: None)
        assert outcome.remedy.retry == (attempt < 2)
    ft = _store(group).read().stage(RUN)
    assert ft.status == "failed" and len(ft.attempts) == 3
    assert [a.batch_size for a in ft.attempts] == [4, 2, 1]
    assert "3 of 3 attempts" in ft.attempts[-1].remedy


def test_unreachable_scheduler_during_retry_decides_again_identically(launched) -> None:
    group, fake = launched
    _fail_finetune(group, fake, "OUT_OF_MEMORY")
    fake.errors = [SubmitError("Socket timed out", transient=True)] * 4
    [outcome] = retry_failed(group, fake, cluster(), sleep=lambda s: None)
    assert outcome.job_id is None and outcome.error
    assert plan_retry(group, RUN, cluster()).batch_size == 2  # not halved twice
    [again] = retry_failed(group, fake, cluster(), sleep=lambda s: None)
    assert again.job_id and yaml.safe_load((group / RUN / "finetune.yaml").read_text())["batch_size"] == 2


def test_user_edited_config_is_backed_up_before_the_remedy(launched) -> None:
    group, fake = launched
    path = group / RUN / "finetune.yaml"
    path.write_text(path.read_text() + "# my note\n")
    _fail_finetune(group, fake, "OUT_OF_MEMORY")
    remedy = plan_retry(group, RUN, cluster())
    changes = {c.path: c for c in apply_remedy(group, RUN, remedy, cluster())}
    assert changes[f"{RUN}/finetune.yaml"].action == "overwrite-edit"
    assert "# my note" in (group / changes[f"{RUN}/finetune.yaml"].backup).read_text()


# ---------------------------------------------------------------------------- real torchtune resume (slow)


@pytest.mark.slow
def test_torchtune_resumes_from_the_config_written_after_a_timeout(tmp_path: Path) -> None:
    """Train 2 x 3 steps of the tiny model, drop epoch_1 (as a TIMEOUT would), resume: only epoch 1 runs again."""
    from tasks.model._status import FinetuneOverrides
    from tasks.training._config import REPO_ROOT
    from tasks.training._overrides import render_finetune_with_overrides
    from tests.support.tiny_training import tiny_run, tiny_setup

    model_dir, data = tiny_setup(tmp_path)
    run = tiny_run(tmp_path, model_dir, data, validation=False, packed=False, max_seq_len=64, epochs=2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TIKTOKEN_CACHE_DIR": "", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    tune = Path(sys.executable).with_name("tune")

    def train(overrides: FinetuneOverrides | None) -> str:
        text = render_finetune_with_overrides(run, run_dir, "cpu", None, overrides)
        (run_dir / "finetune.yaml").write_text(text.replace("max_steps_per_epoch: null", "max_steps_per_epoch: 3"))
        proc = subprocess.run([str(tune), "run", "sweepflow_recipes/lora_finetune_single_device.py", "--config", "finetune.yaml"],
                              cwd=run_dir, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    train(None)
    shutil.rmtree(run_dir / "epoch_1")
    assert resumable_epoch(run_dir) == 0
    train(FinetuneOverrides(resume_epoch=0))
    assert (run_dir / "epoch_1" / "adapter_model.safetensors").exists()
    logs = sorted((run_dir / "logs").glob("log_*.txt"), key=lambda p: p.stat().st_mtime)
    assert len(logs) == 2
    resumed = logs[-1].read_text()
    assert "Step 1 |" not in resumed and "Step 4 |" in resumed, resumed[:500]  # epoch 1 only (global steps 4-6)


def test_timeout_retry_never_asks_for_more_than_the_partitions_maximum() -> None:
    capped = decide("timeout", 1, 3, ctx(time_limit="04:00:00", max_time_limit="06:00:00", resumable_epoch=0))
    assert (capped.kind, capped.time_limit, capped.resume_epoch) == ("resume_more_time", "06:00:00", 0)
    assert capped.time_multiplier == 1.5 and "capped by max_time_limit 06:00:00" in capped.description
    # at the maximum with an epoch on disk: resume with the same time (the next epochs fit)
    same = decide("timeout", 1, 3, ctx(time_limit="06:00:00", max_time_limit="06:00:00", resumable_epoch=1))
    assert (same.kind, same.time_limit, same.resume_epoch) == ("resume_more_time", "06:00:00", 1)
    # at the maximum and nothing to resume from: it would time out again; not submitted, and says why
    stuck = decide("timeout", 1, 3, ctx(time_limit="06:00:00", max_time_limit="06:00:00"))
    assert not stuck.retry and stuck.time_limit is None
    assert "max_time_limit 06:00:00" in stuck.description and "no epoch to resume from" in stuck.description
    assert decide("timeout", 1, 3, ctx(time_limit="04:00:00")).time_limit == "08:00:00"  # no maximum: doubled

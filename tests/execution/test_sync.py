"""sync-status logic: one batched query, SLURM state -> stage status, artifact checks, no regressions.

Against `FakeScheduler` on a real run group. The `.eval` logs are real inspect-ai logs written
with `inspect_ai.log.write_eval_log`. Concurrent writers of runs_status.yaml (8 processes, no
lost update) are tested in tests/model/test_status.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.execution._sync import LOST, sync_jobs
from tasks.model._status_file import StatusStore
from tests.support.fake_scheduler import read_status

RUN = "Llama-3.2-1B-Instruct_rank4"
BASE = "Llama-3.2-1B-Instruct_base"


_status = read_status


def _job(group: Path, run: str, key: str = "finetune") -> str:
    return _status(group).stage(run, key).job_id


def _checkpoints(group: Path, run: str = RUN, epochs=(0, 1), name: str = "model-00001-of-00001.safetensors") -> None:
    for epoch in epochs:
        folder = group / run / f"epoch_{epoch}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"weights")


def _eval_log(group: Path, run: str, epoch: int | str, status: str = "success", task: str = "cap") -> Path:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSpec, write_eval_log

    logs = group / run / "evaluations" / task / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    spec = EvalSpec(created="2026-01-02T00:00:00+00:00", task=task, dataset=EvalDataset(), model=f"hf/{run}",
                    config=EvalConfig(), metadata={"run": run, "epoch": epoch, "is_finetuned": epoch != "base"})
    path = logs / f"2026-01-02T00-00-00_{task}_{run}_{epoch}.eval"
    write_eval_log(EvalLog(status=status, eval=spec), str(path))
    return path


def test_one_batched_query_and_pending_running_states(launched) -> None:
    group, fake = launched
    fake.finish(_job(group, RUN), "RUNNING", node="gpu3", elapsed_s=61.0)
    report = sync_jobs(group, fake)
    assert fake.calls == 1 and report.backend_calls == 1 and report.queried == 14
    status = _status(group)
    ft = status.stage(RUN)
    assert (ft.status, ft.scheduler_state) == ("running", "RUNNING") and ft.output == str(group / RUN / f"slurm-{ft.job_id}.out")
    assert (ft.attempts[-1].node, ft.attempts[-1].elapsed_s) == ("gpu3", 61.0)
    assert status.stage(RUN, "cap_epoch_0").status == "submitted"  # SLURM PENDING
    assert status.stage(RUN, "cap_epoch_0").scheduler_state == "PENDING"
    assert report.total == 14 and report.done == 0 and report.counts["skipped"] == 2
    row = next(r for r in report.table() if r["run"] == RUN and r["stage"] == "finetune")
    assert row == {"run": RUN, "stage": "finetune", "state": "running", "attempts": 1, "elapsed": "0:01:01",
                   "job": ft.job_id, "reason": ""}
    again = sync_jobs(group, fake)
    assert again.changed == 0 and fake.calls == 2


def test_completed_finetune_needs_every_epoch_checkpoint(launched) -> None:
    group, fake = launched
    other = "Llama-3.2-1B-Instruct_rank64"
    _checkpoints(group, RUN)
    _checkpoints(group, other, epochs=(0,))
    adapter_only = "Llama-3.2-3B-Instruct_rank4"
    _checkpoints(group, adapter_only, name="adapter_model.safetensors")
    for run in (RUN, other, adapter_only):
        fake.finish(_job(group, run), "COMPLETED", exit_code="0:0")
    report = sync_jobs(group, fake)
    status = _status(group)
    assert status.stage(RUN).status == "completed" and status.stage(adapter_only).status == "completed"
    assert status.stage(other).status == "failed"
    assert status.stage(other).reason == "COMPLETED but no epoch_1 checkpoint"
    assert [f.run for f in report.newly_failed] == [other]


def test_completed_evaluation_needs_a_successful_eval_log(launched) -> None:
    group, fake = launched
    good = _eval_log(group, RUN, 0)
    _eval_log(group, RUN, 1, status="error")
    _eval_log(group, "Llama-3.2-1B-Instruct_rank64", 1)  # another run's log in another folder
    base_log = _eval_log(group, BASE, "base")
    for key in ("cap_epoch_0", "cap_epoch_1"):
        fake.finish(_job(group, RUN, key), "COMPLETED")
    fake.finish(_job(group, "Llama-3.2-1B-Instruct_rank64", "cap_epoch_0"), "COMPLETED")  # epoch 1's log does not count
    fake.finish(_job(group, BASE, "cap"), "COMPLETED")
    sync_jobs(group, fake)
    status = _status(group)
    e0, e1 = status.stage(RUN, "cap_epoch_0"), status.stage(RUN, "cap_epoch_1")
    assert (e0.status, e0.output) == ("completed", str(good))
    assert (e1.status, e1.reason) == ("failed", "COMPLETED but .eval status error")
    missing = status.stage("Llama-3.2-1B-Instruct_rank64", "cap_epoch_0")
    assert (missing.status, missing.reason) == ("failed", "COMPLETED but no .eval log")
    assert status.stage(BASE, "cap").status == "completed" and status.stage(BASE, "cap").output == str(base_log)


@pytest.mark.parametrize(
    ("raw", "fields", "log", "status", "cause", "reason"),
    [
        ("OUT_OF_MEMORY", {"exit_code": "0:125", "node": "gpu1"}, "", "failed", "oom", "out of memory (OUT_OF_MEMORY on gpu1)"),
        ("FAILED", {"exit_code": "1:0"}, "torch.OutOfMemoryError: CUDA out of memory.", "failed", "oom", "out of memory (FAILED)"),
        ("TIMEOUT", {"node": "gpu1", "elapsed_s": 100.0}, "", "failed", "timeout", "time limit reached (TIMEOUT)"),
        ("NODE_FAIL", {"node": "gpu9"}, "", "failed", "node", "node failure (NODE_FAIL on gpu9)"),
        ("PREEMPTED", {"node": "gpu9"}, "", "failed", "node", "node failure (PREEMPTED on gpu9)"),
        ("FAILED", {"exit_code": "1:0", "node": "gpu1"}, "KeyError: 'output'", "failed", "error", "job failed (FAILED, exit 1:0)"),
        ("CANCELLED by 1000", {"node": "gpu1", "elapsed_s": 5.0}, "", "cancelled", "cancelled", "cancelled by a user (CANCELLED by 1000)"),
        ("FAILED", {"exit_code": "86:0", "node": "gpu1"},
         "sweepflow preflight: FAILED: torchtune 0.6.0 is installed, sweepflow needs exactly 0.6.1 (job Python /x/bin/python)",
         "failed", "environment",
         "job environment: torchtune 0.6.0 is installed, sweepflow needs exactly 0.6.1 (job Python /x/bin/python); see"),
    ],
)
def test_failed_finetune_states(launched, raw, fields, log, status, cause, reason) -> None:
    group, fake = launched
    job = _job(group, RUN)
    (group / RUN / f"slurm-{job}.out").write_text(f"training...\n{log}\n")
    fake.finish(job, raw, **fields)
    report = sync_jobs(group, fake)
    ft = _status(group).stage(RUN)
    assert ft.status == status and ft.reason.startswith(reason) and ft.scheduler_state == raw
    attempt = ft.attempts[-1]
    assert attempt.cause == cause and attempt.scheduler_state == raw and attempt.finished
    assert [f.cause for f in report.newly_failed] == ([cause] if status == "failed" else [])


def test_evaluations_killed_with_their_failed_finetune_are_cancelled(launched) -> None:
    group, fake = launched
    fake.finish(_job(group, RUN), "FAILED", exit_code="1:0")
    fake.finish(_job(group, RUN, "cap_epoch_0"), "CANCELLED")  # kill-on-invalid-dep: no "by", never ran
    stuck = _job(group, RUN, "cap_epoch_1")  # without kill-on-invalid-dep it would wait forever
    fake.finish(stuck, "PENDING", status="cancelled", reason="DependencyNeverSatisfied", held=True)
    sync_jobs(group, fake)
    status = _status(group)
    for key in ("cap_epoch_0", "cap_epoch_1"):
        assert (status.stage(RUN, key).status, status.stage(RUN, key).reason) == ("cancelled", "fine-tune failed")
    assert fake.cancelled == [stuck]


def test_lost_jobs_keep_their_state_unless_artifacts_prove_completion(launched) -> None:
    group, fake = launched
    other = "Llama-3.2-3B-Instruct_rank4"
    for run in (RUN, other):
        fake.finish(_job(group, run), "RUNNING")
    sync_jobs(group, fake)
    _checkpoints(group, other)
    del fake.jobs[_job(group, RUN)], fake.jobs[_job(group, other)]  # gone from squeue and sacct
    report = sync_jobs(group, fake)
    status = _status(group)
    assert (status.stage(RUN).status, status.stage(RUN).reason) == ("running", LOST)
    assert status.stage(other).status == "completed" and status.stage(other).reason.startswith(LOST)
    assert sorted(report.lost) == sorted([f"{RUN}/finetune", f"{other}/finetune"])


def test_finished_stages_are_not_queried_nor_regressed(launched) -> None:
    group, fake = launched
    _checkpoints(group)
    fake.finish(_job(group, RUN), "COMPLETED")
    sync_jobs(group, fake)
    fake.finish(_job(group, RUN), "RUNNING")  # a confused scheduler
    seen: list[list[str]] = []
    original = fake.query
    fake.query = lambda ids, **kw: (seen.append(ids), original(ids))[1]  # type: ignore[method-assign]
    sync_jobs(group, fake)
    assert _job(group, RUN) not in seen[0] and _status(group).stage(RUN).status == "completed"


def test_a_stage_resubmitted_during_the_sync_is_left_alone(launched) -> None:
    group, fake = launched
    store = StatusStore(group / "runs_status.yaml")
    old = _job(group, RUN)
    fake.finish(old, "OUT_OF_MEMORY")
    original = fake.query

    def query_while_launch_writes(ids, **kw):  # launch-runs records a new job id between read and write
        answer = original(ids)
        store.update(lambda s: s.stage(RUN).mark("submitted", job_id="999"))
        return answer

    fake.query = query_while_launch_writes  # type: ignore[method-assign]
    report = sync_jobs(group, fake)
    ft = store.read().stage(RUN)
    assert (ft.status, ft.job_id) == ("submitted", "999") and report.newly_failed == []
    assert store.read().stage(RUN, "cap_epoch_0").status == "submitted"  # other stages were still synced


def test_progress_counts(launched) -> None:
    group, fake = launched
    _checkpoints(group)
    fake.finish(_job(group, RUN), "COMPLETED")
    fake.finish(_job(group, "Llama-3.2-3B-Instruct_rank64"), "FAILED", exit_code="2:0")
    report = sync_jobs(group, fake)
    assert (report.done, report.total) == (2, 14) and round(report.progress, 1) == 14.3
    assert report.counts == {"completed": 1, "failed": 1, "submitted": 12, "skipped": 2}

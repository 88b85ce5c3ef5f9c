"""Provenance per fine-tune attempt: written by launch-runs at submission, refreshed with eval job ids.

A real run group (fakesite -> plan -> deliver -> setup) launched against `FakeScheduler`.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import yaml

import tasks.execution._provenance as provenance
from tasks.execution import retry_run
from tasks.execution._sync import sync_jobs
from tasks.model._plan_file import load_plan
from tests.support.fake_scheduler import cluster, read_status

RUN = "Llama-3.2-1B-Instruct_rank4"
BASE = "Llama-3.2-1B-Instruct_base"


_status = read_status


def _read(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_every_submitted_finetune_has_its_provenance(launched) -> None:
    group, _ = launched
    plan, status = load_plan(group), _status(group)
    for run in plan.finetune_runs:
        job = status.stage(run.name).job_id
        [path] = (group / run.name / "provenance").iterdir()
        assert path.name == f"attempt-1-job-{job}.yaml"
        assert path.read_text().startswith(f"# Provenance of fine-tune attempt 1 of run {run.name} (job {job})")
        data = _read(path)
        assert data["jobs"]["finetune_job_id"] == job and data["jobs"]["previous_finetune_job_ids"] == []
        # evaluations are submitted after their fine-tune: their ids were added as they came
        assert data["jobs"]["evaluation_job_ids"] == {k: s.job_id for k, s in status.runs[run.name].evaluations.items()}
        assert data["jobs"]["batch_size"] == run.params.batch_size
        text = (group / run.name / "finetune.yaml").read_text()
        assert data["finetune_yaml"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        assert data["finetune_yaml"]["config"] == yaml.safe_load(text)
        assert data["seeds"]["training"] == run.params.seed == 42
        assert data["dataset"]["sha256"] == plan.resources.datasets[0].sha256
        assert data["dataset"]["unchanged_since_planning"] is True
        assert data["packages"]["torchtune"] == metadata.version("torchtune") == "0.6.1"
        assert data["packages"]["inspect-ai"] == metadata.version("inspect-ai")
        assert set(provenance.PACKAGES) <= set(data["packages"])
        git = data["sweepflow"]
        assert git["commit"] == "unknown" or len(git["commit"]) == 40
        assert git["dirty"] in (True, False, "unknown")
        assert data["host"] and data["written"] and data["design_hash"] == plan.design_hash
    assert not (group / BASE / "provenance").exists()  # base models are not fine-tuned


def test_a_retry_gets_its_own_attempt_file(launched) -> None:
    group, fake = launched
    first = _status(group).stage(RUN).job_id
    fake.finish(first, "OUT_OF_MEMORY", elapsed_s=60.0, node="gpu1", exit_code="0:125")
    sync_jobs(group, fake)
    outcome = retry_run(group, RUN, fake, cluster(), sleep=lambda s: None)
    assert outcome.job_id
    status = _status(group)
    files = sorted(p.name for p in (group / RUN / "provenance").iterdir())
    assert files == [f"attempt-1-job-{first}.yaml", f"attempt-2-job-{outcome.job_id}.yaml"]
    data = _read(group / RUN / "provenance" / files[1])
    assert data["attempt"] == 2 and data["jobs"]["previous_finetune_job_ids"] == [first]
    assert data["jobs"]["batch_size"] == status.stage(RUN).attempts[-1].batch_size == outcome.remedy.batch_size
    assert data["finetune_yaml"]["config"]["batch_size"] == outcome.remedy.batch_size  # the rewritten config
    assert data["jobs"]["evaluation_job_ids"] == {k: s.job_id for k, s in status.runs[RUN].evaluations.items()}
    old = _read(group / RUN / "provenance" / files[0])
    assert set(old["jobs"]["evaluation_job_ids"].values()).isdisjoint(data["jobs"]["evaluation_job_ids"].values())


def test_a_file_written_before_the_backend_seam_keeps_its_job_ids_under_the_neutral_key(launched) -> None:
    """`slurm:` (the old key) is renamed `jobs:` in place when an evaluation's id is added; nothing is lost."""
    group, _ = launched
    status = _status(group)
    job = status.stage(RUN).job_id
    path = group / RUN / "provenance" / f"attempt-1-job-{job}.yaml"
    data = _read(path)
    keys = list(data)
    data = {("slurm" if key == "jobs" else key): value for key, value in data.items()}  # as it was written
    data["slurm"]["evaluation_job_ids"] = {}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    evaluation = next(s.job_id for s in status.runs[RUN].evaluations.values() if s.job_id)
    provenance.write_provenance(group, RUN, evaluation)
    again = _read(path)
    assert list(again) == keys  # in its place
    assert again["jobs"]["finetune_job_id"] == job
    assert again["jobs"]["evaluation_job_ids"] == {k: s.job_id for k, s in status.runs[RUN].evaluations.items()}


def test_outside_a_git_checkout_the_commit_is_unknown(launched, tmp_path: Path, monkeypatch) -> None:
    group, _ = launched
    monkeypatch.setattr(provenance, "REPO", tmp_path / "not-a-repo")
    monkeypatch.setattr(provenance, "_git_cache", None)
    path = provenance.write_provenance(group, RUN, _status(group).stage(RUN).job_id)
    assert _read(path)["sweepflow"] == {"repo": str(tmp_path / "not-a-repo"), "commit": "unknown", "dirty": "unknown",
                                        "changed_files": []}


def test_a_changed_dataset_is_flagged(launched) -> None:
    group, _ = launched
    dataset = Path(load_plan(group).resources.datasets[0].path)
    dataset.write_text(dataset.read_text() + "\n")
    path = provenance.write_provenance(group, RUN, _status(group).stage(RUN).job_id)
    data = _read(path)["dataset"]
    assert data["unchanged_since_planning"] is False and data["sha256"] != data["sha256_at_planning"]


def test_unknown_jobs_and_base_runs_write_nothing_and_failures_never_raise(launched, caplog) -> None:
    group, _ = launched
    assert provenance.write_provenance(group, RUN, "999999") is None
    assert provenance.write_provenance(group, BASE, _status(group).stage(BASE, "cap").job_id) is None
    assert provenance.record_provenance(group / "missing", RUN, "1") is None
    assert "provenance of" in caplog.text


def test_the_job_sides_versions_are_recorded_when_the_finetune_ends(launched) -> None:
    import json

    group, fake = launched
    job = _status(group).stage(RUN).job_id
    [path] = (group / RUN / "provenance").iterdir()
    assert _read(path)["job_environment"] == f"not recorded yet: the job's preflight writes job_env-{job}.json when it starts"
    record = {"host": "gpu7", "python": "3.11.9", "executable": "/envs/tt/bin/python", "torch": "2.13.0",
              "cuda": "12.8", "gpus": ["NVIDIA A100 80GB PCIe (79 GiB)"],
              "packages": {"torchtune": "0.6.1", "torchao": "0.15.0"}, "problems": [], "stage": "finetune"}
    (group / RUN / f"job_env-{job}.json").write_text(json.dumps(record))
    for epoch in range(load_plan(group).run(RUN).params.epochs):
        (group / RUN / f"epoch_{epoch}").mkdir()
        (group / RUN / f"epoch_{epoch}" / "model.safetensors").write_bytes(b"w")
    fake.finish(job, "COMPLETED")
    report = sync_jobs(group, fake)
    assert (RUN, job) in report.finetunes_ended
    recorded = _read(path)["job_environment"]
    assert recorded["executable"] == "/envs/tt/bin/python" and recorded["gpus"] == ["NVIDIA A100 80GB PCIe (79 GiB)"]
    assert recorded["packages"] == {"torchtune": "0.6.1", "torchao": "0.15.0"} and "stage" not in recorded
    assert _read(path)["packages"]["torchtune"] == "0.6.1"  # the submitting side's versions stay beside it

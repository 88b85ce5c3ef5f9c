"""A second backend that writes its own job files: a run group set up and run through `workstation`.

The `workstation` backend (tests/support/workstation.py) is registered by name and named by the
design's cluster settings. Setup renders its scripts (`finetune.job.sh` with a `#WS` header),
launch-runs submits them, its runner runs them as real processes (the jobs' real preflight in
the job's Python; `tune` is a stand-in that writes the epoch checkpoint), and sync reads their
state and their logs (`job-<id>.log`) through the backend. Nothing in the group is SLURM's: no
`.slurm` script, no `#SBATCH` line, no `slurm-<id>.out` log, no submit_all.sh.
No SLURM cluster is used; the jobs are real processes (about 20 s).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tasks.backends import backend_for
from tasks.execution import submit_pending, sync_jobs
from tasks.model import RunGroup, parse_design
from tasks.planning import build_plan, deliver_plan
from tasks.setup import set_up_group
from tests.support.fakesite import DATE, FakeSite
from tests.support.workstation import NAME, WorkstationBackend, registered

RUN = "Llama-3.2-1B-Instruct_rank4"
NOW = "2026-01-02T10:00:00+00:00"


def _job_env(root: Path) -> Path:
    """A job environment whose Python is this one, with a stand-in `tune` that writes the epoch checkpoint."""
    venv, stand_ins = root / "wsenv", root / "wsbin"
    (venv / "bin").mkdir(parents=True)
    stand_ins.mkdir()
    tune = stand_ins / "tune"
    tune.write_text('#!/bin/bash\necho "stand-in tune $*"\nmkdir -p epoch_0 && touch epoch_0/adapter_model.safetensors\n')
    tune.chmod(0o755)
    python_bin = Path(sys.executable).parent
    (venv / "bin" / "activate").write_text(f'export PATH="{stand_ins}:{python_bin}:$PATH"\n')
    return venv


def _files(group: Path) -> list[Path]:
    return [p for p in group.rglob("*") if p.is_file() and ".sweepflow" not in p.parts]


def _set_up(site: FakeSite) -> Path:
    cluster = {"backend": NAME, "device": "cpu", "mem": "2G", "eval_mem": "2G", "max_queued_jobs": 10,
               "submit_stagger_seconds": 0, "job_env": {"venv": str(_job_env(site.root))}}
    data = site.design(models=["Llama-3.2-1B-Instruct"], factors={"lora_rank": [4, 64]}, training={"epochs": 1},
                       cluster=cluster)
    group = deliver_plan(build_plan(parse_design(data), date=DATE), NOW)
    set_up_group(group)
    return group


def test_a_group_set_up_and_run_through_a_second_backend_has_only_its_files(fake_site: FakeSite) -> None:
    with registered():
        group = _set_up(fake_site)
        files = _files(group)
        script = group / RUN / "finetune.job.sh"
        header = [line for line in script.read_text().splitlines() if line.startswith("#WS")]
        assert header == [f"#WS --job-name={RUN}", f"#WS --time={header[1].split('=', 1)[1]}", "#WS --cpus-per-task=4"]
        assert (group / RUN / "evaluations" / "eval_epoch_0.job.sh").is_file()
        assert not [p for p in files if p.suffix == ".slurm" or p.name.startswith("slurm-")]
        assert not [p for p in files if "#SBATCH" in p.read_text(errors="replace")]
        assert not (group / "submit_all.sh").exists()  # the workstation has no submit-by-hand script

        backend = backend_for(RunGroup(group))
        assert isinstance(backend, WorkstationBackend)
        report = submit_pending(group, backend, RunGroup(group).cluster, sleep=lambda _s: None)
        assert report.complete and not report.failed, report
        deadline = time.monotonic() + 300
        while True:
            status = sync_jobs(group, backend)
            if all(row.state in ("completed", "failed", "cancelled", "skipped") for row in status.rows):
                break
            assert time.monotonic() < deadline, status.rows
            time.sleep(1)

        final = RunGroup(group).status.read()
        finetune = final.stage(RUN)
        assert finetune.status == "completed" and finetune.scheduler_state == "COMPLETED", finetune
        log = group / RUN / f"job-{finetune.job_id}.log"
        assert f"as job {finetune.job_id}" in log.read_text()  # WS_JOB_ID reached the script
        assert "stand-in tune run" in log.read_text()
        evaluated = [(run, key, stage) for run, key, stage in final.stages() if stage.job_id and key != "finetune"]
        assert len(evaluated) == 3, evaluated  # the fine-tunes' epoch 0 and the control, each a job of its own
        for run, key, stage in evaluated:  # every evaluation job ran and left its log by its backend's name
            assert (group / run / "evaluations" / f"job-{stage.job_id}.log").is_file(), (run, key, stage)
            assert stage.status in ("completed", "failed") and stage.scheduler_state, (run, key, stage)
        files = _files(group)
        assert not [p for p in files if p.suffix == ".slurm" or p.name.startswith("slurm-")]
        assert os.environ.get("WS_JOB_ID") is None

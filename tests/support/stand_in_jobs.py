"""Every stage of a run group run on the REAL local backend by a stand-in job, as sbatch ran it.

`run_every_stage` submits one small script per job (a fine-tune, or a checkpoint's evaluation
job), named as setup names it and submitted from its own folder (so launch-runs can adopt it): fine-tunes write their
epoch checkpoints, evaluations succeed; once all ended, each evaluation gets a REAL inspect-ai
`.eval` log (`tests/support/finished_runs.mock_eval`). Nothing is written to runs_status.yaml:
that is what a launcher killed before its journal write leaves.
"""

from __future__ import annotations

import time
from pathlib import Path

from tasks.backends.local import LocalBackend
from tasks.model._group import RunGroup
from tasks.model._layout import eval_job_name
from tests.support.finished_runs import mock_eval

CHECKPOINTS = "mkdir -p epoch_0 epoch_1 && touch epoch_0/adapter_model.safetensors epoch_1/adapter_model.safetensors"


def run_every_stage(group: Path, backend: LocalBackend, scripts: Path, timeout: float = 60) -> list[str]:
    """The job ids, once every stand-in job COMPLETED and every evaluation has its .eval log."""
    g = RunGroup.of(group)
    scripts.mkdir(parents=True, exist_ok=True)
    submitted = []
    for run in g.plan.runs:
        for job in ([] if run.is_control else [None]) + list(run.checkpoint_jobs):
            name = run.name if job is None else eval_job_name(job)
            cwd = g.layout.job_dir(run.name, job)
            script = scripts / f"{name}.sh"
            body = CHECKPOINTS if job is None else "true"
            script.write_text(f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --time=0:30\n{body}\n")
            submitted.append(backend.submit(script, cwd))
    deadline = time.monotonic() + timeout
    while True:
        infos = backend.query(submitted)
        if len(infos) == len(submitted) and all(i.status == "completed" for i in infos.values()):
            break
        assert time.monotonic() < deadline, f"stand-in jobs did not finish: {infos}"
        time.sleep(0.2)
    for run in g.plan.runs:
        for job in run.evaluations:
            mock_eval(group, run.name, "base" if job.epoch is None else job.epoch, 3, g.plan.design_hash)
    return submitted

"""The job environment and its preflight on the REAL local SLURM cluster.

Three fine-tunes of one real run group, whose generated `finetune.slurm` keeps everything up to
and including the preflight (site lines, `job_env` activation, per-job scratch, the preflight in
the job's own Python) and gets a stub body after it instead of `tune run`:
  ok      this clone's .venv (the default job_env): the preflight passes, the stub saves epoch_0
  bare    a venv without torch or torchtune: "torchtune is not installed", exit 86
  cuda    device cuda asked for on this CPU-only node: "torch.cuda.is_available() is False"
sync classifies the two failures as environment errors (the preflight line is the reason) and
the retry step decides not to retry them; the good one completes. Every job is cancelled at
the end (scancel of its ids only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_scheduler import make_group

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

MODEL = "Llama-3.2-1B-Instruct"
SITE = {"mem": "500M", "eval_mem": "100M", "cpus_per_task": 1, "time_limit": "5", "eval_time_limit": "5",
        "backend": "slurm", "max_queued_jobs": 50, "submit_stagger_seconds": 0, "device": "cpu"}
OK, BARE, CUDA = (f"{MODEL}_rank{r}" for r in (1, 2, 3))
PREFLIGHT_END = '--record job_env-"${SLURM_JOB_ID:-local}".json || exit $?'
SAVE = 'mkdir -p epoch_0 && echo w > epoch_0/model-00001-of-00001.safetensors && echo "trained"\n'


def _keep_through_preflight(script: Path, body: str, edit: tuple[str, str] | None = None) -> None:
    text = script.read_text()
    head = text[: text.index(PREFLIGHT_END) + len(PREFLIGHT_END)]
    if edit is not None:
        assert edit[0] in head, edit
        head = head.replace(edit[0], edit[1])
    script.write_text(head + "\n" + body)


def _status(group: Path) -> Any:
    from tasks.model._status_file import StatusStore

    return StatusStore(group / "runs_status.yaml").read()


def test_preflight_failures_are_environment_errors_and_never_retried(slurm_cluster_db: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.backends.slurm import SlurmBackend
    from tasks.execution._retries import retry_failed
    from tasks.execution._submit import submit_pending
    from tasks.execution._sync import sync_jobs
    from tasks.model._cluster import cluster_settings
    from tasks.model._plan_file import load_plan

    cluster = slurm_cluster_db
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    tmp_path.chmod(0o755)
    bare = tmp_path / "bare-env"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(bare)], check=True)
    group = make_group(tmp_path, models=[MODEL], factors={"lora_rank": [1, 2, 3]}, controls=False,
                       training={"epochs": 1}, cluster=SITE)
    venv = Path(sys.prefix)
    _keep_through_preflight(group / OK / "finetune.slurm", SAVE)
    _keep_through_preflight(group / BARE / "finetune.slurm", SAVE, (f"source {venv}/bin/activate", f"source {bare}/bin/activate"))
    _keep_through_preflight(group / CUDA / "finetune.slurm", SAVE, ("--device cpu --gpus 0", "--device cuda --gpus 1"))
    backend = SlurmBackend(env=cluster.env)
    settings = cluster_settings(load_plan(group).design)
    ids: list[str] = []
    try:
        submit_pending(group, backend, settings, sleep=lambda s: None)
        ids = [_status(group).stage(run).job_id for run in (OK, BARE, CUDA)]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            sync_jobs(group, backend)
            if all(_status(group).stage(run).status in ("completed", "failed") for run in (OK, BARE, CUDA)):
                break
            time.sleep(2)
        status = _status(group)
        ok, no_pkg, no_gpu = (status.stage(run) for run in (OK, BARE, CUDA))
        log = (group / OK / f"slurm-{ok.job_id}.out").read_text()
        assert "sweepflow preflight: ok: python" in log and "torchtune 0.6.1, torchao 0.15.0; no GPU" in log, log
        record = json.loads((group / OK / f"job_env-{ok.job_id}.json").read_text())
        assert record["executable"].startswith(str(venv)) and record["packages"]["torchtune"] == "0.6.1"
        assert not list((group / OK).glob(".scratch-*"))  # the per-job cache folder is gone
        assert no_pkg.status == "failed" and no_pkg.attempts[-1].cause == "environment", no_pkg
        assert no_pkg.reason.startswith("job environment: torchtune is not installed (sweepflow needs torchtune==0.6.1)")
        assert f"(job Python {bare}/bin/python" in no_pkg.reason
        assert no_gpu.attempts[-1].cause == "environment"
        assert "device cuda was asked for, but torch.cuda.is_available() is False" in no_gpu.reason
        assert no_pkg.exit_code == "86:0" and no_gpu.exit_code == "86:0"
        outcomes = {o.run: o for o in retry_failed(group, backend, settings, sleep=lambda s: None)}
        assert set(outcomes) == {BARE, CUDA}
        assert all(o.remedy.kind == "none" and "fix job_env" in o.remedy.description for o in outcomes.values())
        assert len(_status(group).stage(BARE).attempts) == 1  # nothing was submitted again
        assert ok.status == "completed"
    finally:
        live = [i for i in ids if i]
        if live:
            cluster.run("scancel", *live, check=False)


def test_site_check_runs_for_real_on_slurm(slurm_cluster_db: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """check-site's jobs on the real cluster: the right environment passes, a bare one fails in its preflight."""
    from tasks.backends.slurm import SlurmBackend
    from tasks.model import cluster_settings, parse_design
    from tasks.planning import build_plan, render_plan_markdown
    from tasks.setup import recent_pass, run_site_check
    from tests.support.fakesite import design

    cluster = slurm_cluster_db
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    tmp_path.chmod(0o755)
    plan = build_plan(parse_design(design(tmp_path, cluster={**SITE, "mem": "3G", "eval_mem": "2G"}), base=tmp_path),
                      date="2026-01-02")
    settings = cluster_settings(plan.design)
    backend = SlurmBackend(env=cluster.env)

    report = run_site_check(plan, settings, backend, timeout_s=240, poll_s=2)

    assert report.passed, report.failures()
    assert report.backend == "slurm" and [s.shape.stages for s in report.shapes] == [["finetune"], ["eval"]]
    finetune, evaluation = report.shapes
    assert finetune.packages["torchtune"] == "0.6.1" and "inspect_ai" in evaluation.packages
    assert all(s.job_id and s.elapsed_s is not None and s.packages["torch"] for s in report.shapes)
    assert all(m.ok for s in report.shapes for m in s.models)
    assert "**Passed**" in render_plan_markdown(plan.model_copy(update={"site_check": report}))
    assert recent_pass(plan, settings, "slurm") is not None

    bare = tmp_path / "bare-env"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(bare)], check=True)
    broken = settings.model_validate({**settings.model_dump(), "job_env": {"venv": str(bare)}})
    failed = run_site_check(plan, broken, backend, timeout_s=240, poll_s=2)

    assert not failed.passed
    assert "torchtune is not installed" in failed.shapes[0].message
    assert "inspect_ai is not installed" in failed.shapes[1].message
    assert all(s.outcome == "failed" and "torch cannot be imported" in s.message for s in failed.shapes)
    assert all(f"(job Python {bare}/bin/python" in s.message for s in failed.shapes)

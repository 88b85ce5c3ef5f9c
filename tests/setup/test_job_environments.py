"""Job scripts for each kind of job environment, and the site's own SLURM syntax.

A conda env (with its module), a venv, and module lines only: the fine-tune and evaluation
scripts of each are golden files (tests/golden/job_env/<kind>/), pass shellcheck, and, run
with recording stubs, activate exactly that environment before the preflight; nothing puts
the orchestrator's venv on PATH. Constraint expressions, the GPU gres type and evaluation
resources reach the #SBATCH lines. Regenerate with `UPDATE_GOLDEN=1 pytest tests/setup/test_job_environments.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filelock import FileLock

from tasks.model._cluster import cluster_settings
from tasks.setup._files import experiment_files
from tests.support.paths import GOLDEN_DIR
from tests.support.setup_groups import Sandbox, check_scripts, pin_repo_path, plan_of, planned, seed_design

GOLDEN = GOLDEN_DIR / "job_env"
SITE = Path("/tmp/sweepflow-golden-jobenv")  # fixed: its paths are in the golden files
RUN = "Llama-3.2-1B-Instruct_rank4"
SCRIPTS = {"finetune.slurm": f"{RUN}/finetune.slurm",
           "eval_epoch_1.slurm": f"{RUN}/evaluations/eval_epoch_1.slurm"}
ENVS = {
    "conda": {"modules": ["anaconda3/2024.6"], "conda": "/scratch/gpfs/lab/envs/tt-0.6.1"},
    "venv": {"venv": "/home/me/venvs/sweepflow-gpu"},
    "modules": {"modules": ["cudatoolkit/12.4", "sweepflow-env/2026.1"]},
}


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory):
    with FileLock(f"{SITE}.lock"), pytest.MonkeyPatch.context() as patch:
        pin_repo_path(patch)
        import shutil

        shutil.rmtree(SITE, ignore_errors=True)
        SITE.mkdir(parents=True)
        yield plan_of(planned(seed_design(SITE)))


def rendered(plan, **cluster) -> dict[str, str]:
    with pytest.MonkeyPatch.context() as patch:
        pin_repo_path(patch)
        files = experiment_files(plan, cluster_settings(plan.design, cluster))
    return {name: files[rel].content for name, rel in SCRIPTS.items()}


@pytest.mark.parametrize("kind", sorted(ENVS))
def test_job_scripts_per_environment(plan, kind: str, tmp_path: Path) -> None:
    scripts = rendered(plan, job_env=ENVS[kind])
    for name, text in scripts.items():
        golden = GOLDEN / kind / name
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), f"{kind}/{name} differs from its golden file (UPDATE_GOLDEN=1 regenerates)"
        assert "/opt/sweepflow/.venv" not in text  # the orchestrator's venv is nowhere in the job
        (tmp_path / name).write_text(text)
    check_scripts([tmp_path / name for name in scripts])


def test_the_environment_is_activated_before_the_preflight(plan, tmp_path: Path) -> None:
    script = tmp_path / "finetune.slurm"
    script.write_text(rendered(plan, job_env=ENVS["conda"])["finetune.slurm"])
    group = Path(plan.group_dir) / RUN
    group.mkdir(parents=True, exist_ok=True)
    calls = Sandbox(tmp_path / "sandbox").run(script)
    assert [c["prog"] for c in calls][:4] == ["module", "conda", "conda", "python"]
    assert calls[0]["argv"] == ["load", "anaconda3/2024.6"]
    assert calls[1]["argv"] == ["shell.bash", "hook"] and calls[2]["argv"] == ["activate", ENVS["conda"]["conda"]]
    assert calls[3]["argv"][0] == "/opt/sweepflow/tasks/core/preflight.py"


def test_a_missing_venv_fails_as_an_environment_error(plan, tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "finetune.slurm"
    script.write_text(rendered(plan, job_env={"venv": str(tmp_path / "gone")})["finetune.slurm"])
    (Path(plan.group_dir) / RUN).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 86
    assert f"sweepflow preflight: FAILED: no virtual environment at {tmp_path / 'gone'}" in proc.stdout


def test_site_syntax_reaches_the_sbatch_lines(plan) -> None:
    scripts = rendered(plan, constraint="[a100|h100]&intel", eval_partition="mig", eval_constraint="gpu40",
                       eval_gpu_type="3g.40gb")
    finetune = scripts["finetune.slurm"].splitlines()
    assert '#SBATCH --constraint="[a100|h100]&intel"' in finetune and "#SBATCH --gres=gpu:1" in finetune
    evaluation = scripts["eval_epoch_1.slurm"].splitlines()
    assert {"#SBATCH --partition=mig", "#SBATCH --constraint=gpu40", "#SBATCH --gres=gpu:3g.40gb:1"} <= set(evaluation)
    typed = plan.model_copy(update={"design": plan.design.model_copy(update={
        "gpu": plan.design.gpu.model_copy(update={"type": "a100"})})})
    scripts = rendered(typed)
    assert "#SBATCH --gres=gpu:a100:1" in scripts["finetune.slurm"].splitlines()
    assert "#SBATCH --gres=gpu:a100:1" in scripts["eval_epoch_1.slurm"].splitlines()  # evaluations inherit it

"""Generated files pass their tools: `tune validate` and `bash -n` / `shellcheck -S style`.

`tune validate` (in process) on every generated finetune.yaml; `bash -n` and shellcheck on every
generated script of the seed group, the full-featured cluster variant and a CPU preview.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tasks.setup._experiment import set_up_group
from tasks.training._config import validate_config
from tests.support.setup_groups import check_scripts, plan_of, scripts

# ------------------------------------------------------------------ tune validate


def test_tune_validate_every_generated_config(seed_group: Path, full_group: Path) -> None:
    configs = sorted(seed_group.glob("*/finetune.yaml")) + sorted(full_group.glob("*/finetune.yaml"))
    assert len(configs) == 8
    for config in configs:
        ok, message = validate_config(config)
        assert ok, f"{config}: {message}"
    full = yaml.safe_load(next(full_group.glob("*/finetune.yaml")).read_text())
    assert "dataset_val" in full and full["device"] == "cuda"
    assert "lora_finetune_distributed_val.py" in (next(full_group.glob("*/finetune.slurm"))).read_text()


# ------------------------------------------------------------------ bash -n and shellcheck


def test_scripts_pass_bash_n_and_shellcheck_seed(seed_group: Path) -> None:
    paths = scripts(seed_group)
    plan = plan_of(seed_group)
    assert len(plan.eval_jobs) == 11  # evaluations: 4 runs x 2 tasks + 3 base tasks ...
    assert len(paths) == 4 + 6 + 1  # ... in one job per checkpoint (4 + 2 base); fine-tunes, submit_all.sh
    assert len(plan.checkpoint_jobs) == 6
    check_scripts(paths)


def test_scripts_pass_bash_n_and_shellcheck_full_cluster(full_group: Path) -> None:
    paths = scripts(full_group)
    text = (full_group / plan_of(full_group).finetune_runs[0].name / "finetune.slurm").read_text()
    for line in ("#SBATCH --account=lab", "#SBATCH --partition=gpu", "#SBATCH --qos=normal", "#SBATCH --constraint=a100",
                 "#SBATCH --mail-type=END", "#SBATCH --gres=gpu:2", "#SBATCH --time=1-00:00:00", "module load cuda/12.1"):
        assert line in text.splitlines()
    assert any("tasks.evaluation.best_epoch" in p.read_text() for p in paths)
    check_scripts(paths)


def test_scripts_pass_bash_n_and_shellcheck_cpu(seed_group: Path) -> None:
    report = set_up_group(seed_group, preview=True, cluster_overrides={"device": "cpu", "env_setup": ["source ~/venv/bin/activate"]})
    try:
        paths = scripts(report.preview_dir)
        evals = [p for p in paths if p.name.startswith("eval")]
        assert evals and all("tasks.evaluation.run_tasks" in p.read_text() for p in evals)
        model_args = [yaml.safe_load(p.read_text()) for p in report.preview_dir.rglob("model_args.yaml")]
        assert model_args and all(a["device"] == "cpu" and a["do_sample"] is False for a in model_args)
        assert not any("--gres" in p.read_text() for p in paths)
        check_scripts(paths)
    finally:
        shutil.rmtree(report.preview_dir)


def test_submit_all_submits_every_stage_chained_afterok(seed_group: Path, tmp_path: Path) -> None:
    from tests.support.setup_groups import Sandbox

    plan = plan_of(seed_group)
    calls = [c for c in Sandbox(tmp_path).run(seed_group / "submit_all.sh") if c["prog"] == "sbatch"]
    assert len(calls) == len(plan.finetune_runs) + len(plan.checkpoint_jobs)
    finetunes = [c for c in calls if c["argv"][-1] == "finetune.slurm"]
    assert len(finetunes) == len(plan.finetune_runs)
    for run in plan.runs:
        evals = [c for c in calls if f"/{run.name}/evaluations/" in c["cwd"] + "/"]
        assert len(evals) == len(run.checkpoint_jobs)
        dependency = [] if run.is_control else ["--dependency=afterok:4242"]  # the id without ";cluster"
        assert all(c["argv"][1:-1] == dependency for c in evals), (run.name, evals)

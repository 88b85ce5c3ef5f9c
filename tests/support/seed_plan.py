"""The seed's 2x2 example as a fully resolved Plan, built by hand (no site, no prior-log scan).

Runs come from `expand_design`; paths are fixed fake ones and estimates are hand-made, so
documents rendered from it (tests/golden/seed_2x2) do not depend on where the repository or
tmp lives. Used by planning/test_render.py, planning/test_deliver.py and model/test_status.py.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import yaml

from tasks.model._design_file import parse_design
from tasks.model._plan import (
    DatasetInfo,
    DiskEstimate,
    Estimates,
    Figure,
    ModelEstimate,
    ModelInfo,
    Plan,
    RunEstimate,
    Scenario,
    SplitCounts,
    VerifiedResources,
)
from tasks.planning._expand import expand_design
from tasks.planning._formulas import checkpoint_job_minutes
from tasks.planning._power import statistical_power
from tests.support.paths import REPO_DIR

FAKE_REPO = "/home/researcher/sweepflow"  # where the design's relative paths "live"
NOW = "2025-10-18T09:45:00+00:00"
PRIOR_1B = "prior log /scratch/me/old/ck-out-bright_horizon/slurm-4471.out"
PRIOR_3B = "prior log /scratch/me/old/ck-out-quiet_river/slurm-4502.out"
DEFAULT = "default, preliminary"

# per-model figures a prior-log scan could have produced
MODEL_FIGURES: dict[str, dict[str, Any]] = {
    "Llama-3.2-1B-Instruct": dict(batch=16, speed=0.35, peak=2.41, ckpt=2.4, eval=2.0, epoch_min=10.0, size=2_471_645_608, src=PRIOR_1B),
    "Llama-3.2-3B-Instruct": dict(batch=8, speed=0.30, peak=6.02, ckpt=6.1, eval=4.0, epoch_min=22.5, size=6_425_529_112, src=PRIOR_3B),
}
TRAIN, DENSITY = 8000, 2.8


def design_data(**changes: Any) -> dict[str, Any]:
    """The seed example design with its relative paths made absolute under FAKE_REPO."""
    data = yaml.safe_load((REPO_DIR / "examples" / "seed_2x2" / "design.yaml").read_text())
    data["dataset"]["path"] = f"{FAKE_REPO}/{data['dataset']['path']}"
    for task in data["evaluation"]["tasks"]:
        task["script"] = f"{FAKE_REPO}/{task['script']}"
        if task.get("dataset"):
            task["dataset"] = f"{FAKE_REPO}/{task['dataset']}"
    data.update(changes)
    return data


def _estimates(plan_runs: list, gpus: int) -> tuple[list, Estimates]:
    per_model = {
        m: ModelEstimate(
            model=m,
            batch_size=Figure(value=f["batch"], source=f["src"]),
            packing_density=Figure(value=DENSITY, source=f["src"]),
            peak_memory_gib=Figure(value=f["peak"], source=f["src"]),
            speed_it_s=Figure(value=f["speed"], source=f["src"]),
            prior_samples=TRAIN,
            prior_batch_size=f["batch"],
            checkpoint_gib_per_epoch=Figure(value=f["ckpt"], source=f["src"]),
            eval_minutes=Figure(value=f["eval"], source=DEFAULT),
        )
        for m, f in MODEL_FIGURES.items()
        if any(r.model == m for r in plan_runs)
    }
    runs, run_est = [], {}
    for run in plan_runs:
        f = MODEL_FIGURES[run.model]
        control = run.is_control
        bs = f["batch"]
        run = run.model_copy(update={"params": run.params.model_copy(update={"batch_size": bs})})
        runs.append(run)
        epochs = 0 if control else run.params.epochs
        train = f["epoch_min"] * epochs
        # one job per evaluated checkpoint: the model loaded once, then each of its tasks
        evals = sum(checkpoint_job_minutes([f["eval"]] * len(job.tasks)) for job in run.checkpoint_jobs)
        run_est[run.name] = RunEstimate(
            run=run.name, model=run.model, batch_size=bs,
            steps_per_epoch=0 if control else math.ceil(TRAIN / DENSITY / bs),
            minutes_per_epoch=0.0 if control else f["epoch_min"], train_minutes=train,
            eval_jobs=len(run.checkpoint_jobs), eval_minutes=evals, gpu_hours=round((train * gpus + evals) / 60, 4),
            disk_gib=round(epochs * f["ckpt"] + 0.01 * len(run.evaluations), 4),
        )
    ft = [e for r, e in zip(runs, run_est.values()) if not r.is_control]
    train_seq = sum(e.train_minutes for e in ft)
    eval_seq = sum(e.eval_minutes for e in run_est.values())
    n_evals = sum(e.eval_jobs for e in run_est.values())
    per_model_gib = {m: round(sum(r.params.epochs * MODEL_FIGURES[m]["ckpt"] for r in runs if r.model == m and not r.is_control), 4)
                     for m in per_model}
    ckpt, logs = sum(per_model_gib.values()), 0.01 * sum(len(r.evaluations) for r in runs)  # a log per task
    longest_eval = max(e.eval_minutes / e.eval_jobs for e in run_est.values() if e.eval_jobs)
    chunks = sorted(e.train_minutes for e in ft)
    mixed_train = sum(max(chunks[i:i + 2]) for i in range(0, len(chunks), 2))
    estimates = Estimates(
        per_model=per_model,
        runs=run_est,
        training_gpu_hours=round(train_seq * gpus / 60, 4),
        eval_gpu_hours=round(eval_seq / 60, 4),
        training_minutes_sequential=train_seq,
        eval_minutes_sequential=eval_seq,
        disk=DiskEstimate(checkpoints_gib=round(ckpt, 4), eval_logs_gib=round(logs, 4), margin_gib=round(0.15 * (ckpt + logs), 4),
                          total_gib=round(1.15 * (ckpt + logs), 4), per_model_gib=per_model_gib),
        scenarios=[  # as tasks/planning/_estimate.py words them
            Scenario(name="parallel", gpus=max(len(ft) * gpus, n_evals), training_minutes=max(chunks), eval_minutes=longest_eval,
                     detail=f"{len(ft)} fine-tunes at once (longest {max(chunks):.1f} min), "
                            f"then {n_evals} evaluation jobs at once (longest {longest_eval:.1f} min)"),
            Scenario(name="sequential", gpus=gpus, training_minutes=train_seq, eval_minutes=eval_seq, detail="one job at a time"),
            Scenario(name="mixed", gpus=2, training_minutes=mixed_train, eval_minutes=math.ceil(n_evals / 2) * longest_eval,
                     detail=f"training: {math.ceil(len(ft) / 2)} batches; evaluations: {math.ceil(n_evals / 2)} batches × {longest_eval:.1f} min"),
        ],
        notes=["Evaluation times are preliminary defaults: no prior inspect-ai logs were found."],
    )
    return runs, estimates


def build_plan(data: dict[str, Any] | None = None, group_dir: Path | None = None, design_hash: str | None = None) -> Plan:
    """A realistic, fully resolved Plan of the seed example (or of a variant of its design)."""
    design = parse_design(data or design_data(), source="design.yaml", base=Path(FAKE_REPO))
    runs, estimates = _estimates(expand_design(design), design.gpu.count)
    run_group = f"{design.name}_2025-10-18"
    resources = VerifiedResources(
        models=[ModelInfo(name=m, path=Path("/models") / m, size_bytes=MODEL_FIGURES[m]["size"]) for m in design.models],
        datasets=[DatasetInfo(path=path, size_bytes=671_088, sha256=hashlib.sha256(str(path).encode()).hexdigest(),
                              splits=SplitCounts(train=TRAIN, validation=1000, test=1000))
                  for path in dict.fromkeys(r.params.dataset.path for r in runs)],
        eval_scripts={t.name: t.script for t in design.evaluation.tasks},
        eval_datasets={t.name: t.dataset for t in design.evaluation.tasks if t.dataset},
        free_disk_gib=812.5,
    )
    return Plan(
        run_group=run_group,
        created="2025-10-18T09:30:00+00:00",
        design_hash=design_hash or hashlib.sha256(repr(sorted(design.model_dump(mode="json").items())).encode()).hexdigest(),
        design=design,
        group_dir=group_dir or Path("/scratch/me/experiments") / run_group,
        recipe="lora_finetune_single_device",
        runs=runs,
        resources=resources,
        estimates=estimates,
        # 1,000 test items per task (the hand-made split counts; the reasoning task's own file: the same)
        power=statistical_power(design, runs, {t.name: 1000 for t in design.evaluation.tasks}),
    )

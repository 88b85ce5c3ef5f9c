"""Every file of an experiment's directory tree, rendered from the plan (nothing written here).

Reads: a `Plan` (from experiment.yaml) and the cluster settings.
Writes: nothing; returns {relative path: GeneratedFile}. `tasks/setup/_materialize.py` writes them.
"""

from __future__ import annotations

import functools
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tasks.backends import JobSpec, script_kind
from tasks.core._errors import SweepflowError
from tasks.core._files import dump_yaml
from tasks.core._repo import REPO_ROOT
from tasks.core._templating import render_template
from tasks.evaluation._chat_format import model_args
from tasks.evaluation._eval_logs import epoch_label
from tasks.evaluation._inspect_tasks import TaskNotFound, TaskSignature, eval_task_reference, task_signature
from tasks.evaluation._task_contract import task_args
from tasks.model._cluster import ClusterSettings, JobEnv
from tasks.model._design import EvalTask, PathsSpec, design_type
from tasks.model._factors import factor_levels
from tasks.model._job_naming import JobNaming
from tasks.model._layout import (
    FINETUNE_STEM,
    MODEL_ARGS,
    TASK_ARGS,
    GroupLayout,
    eval_job_name,
    eval_script_name,
    eval_tasks_file_name,
)
from tasks.model._plan import CheckpointJob, Plan, Run
from tasks.model._status import FinetuneOverrides
from tasks.planning._time_limits import eval_time_limit, finetune_time_limit
from tasks.training._config import recipe_for
from tasks.training._overrides import apply_overrides, render_finetune_with_overrides
from tasks.training._registry import RECIPE_REQUIREMENTS, lookup

SWEEPFLOW_HOME = REPO_ROOT
_REPO = SWEEPFLOW_HOME


def python_bin() -> Path:
    """The bin/ folder of sweepflow's Python environment, for the job scripts' PATH.

    A virtual environment inside the clone is named relative to SWEEPFLOW_HOME, so the
    scripts of a clone at another path (or the golden files) name their own .venv.
    """
    prefix = Path(sys.prefix)
    try:
        return SWEEPFLOW_HOME / prefix.relative_to(_REPO) / "bin"
    except ValueError:
        return prefix / "bin"


class GeneratedFile(BaseModel):
    """One file setup-experiment writes: its text, and whether it is executable."""

    content: str
    executable: bool = False


def _dump(data: object) -> str:
    return dump_yaml(data)  # libyaml's emitter when present (5x faster than PyYAML's; same text)


def job_spec(
    cluster: ClusterSettings, name: str, time_limit: str, mem: str, gpus: int, gpu_type: str | None = None
) -> JobSpec:
    """What a fine-tune asks the scheduler for: the cluster settings' site options, this job's size."""
    return JobSpec(
        name=name, time_limit=time_limit, mem=mem, cpus=cluster.cpus_per_task, gpus=gpus, gpu_type=gpu_type,
        account=cluster.account, partition=cluster.partition, constraint=cluster.constraint, qos=cluster.qos,
        extra=list(cluster.extra_sbatch),
    )


def eval_job_spec(cluster: ClusterSettings, name: str, time_limit: str, gpu_type: str | None) -> JobSpec:
    """An evaluation's request: its own partition, constraint and GPU type where the settings give them."""
    spec = job_spec(cluster, name, time_limit, cluster.eval_mem, 1 if cluster.device == "cuda" else 0,
                    cluster.eval_gpu_type or gpu_type)
    return spec.model_copy(update={
        "partition": cluster.eval_partition or cluster.partition,
        "constraint": cluster.eval_constraint or cluster.constraint,
    })


def _submissions(plan: Plan, naming: JobNaming) -> list[dict[str, Any]]:
    """submit_all.sh's jobs per run, relative to the group: its fine-tune (none for a control) and evaluations."""
    layout = GroupLayout(plan.group_dir)

    def where(run: Run, job: CheckpointJob | None) -> dict[str, str]:
        script, folder = layout.job_files(run.name, job, naming)
        return {"dir": folder.relative_to(plan.group_dir).as_posix(), "script": script.name}

    return [{"name": run.name, "finetune": None if run.is_control else where(run, None),
             "evals": [where(run, job) for job in run.checkpoint_jobs]} for run in plan.runs]


def job_environment(cluster: ClusterSettings) -> JobEnv:
    """The jobs' Python environment: the settings' `job_env`, else this clone's own venv."""
    # not validated: the path is this clone's, not user input (and every value is shell-quoted)
    return cluster.job_env or JobEnv.model_construct(modules=[], conda=None, venv=str(python_bin().parent))


def environment_context(plan: Plan, cluster: ClusterSettings, stage: str, gpus: int, folder: Path) -> dict[str, Any]:
    """What templates/jobs/_environment.j2 needs: the env, the scratch folder, the preflight's request.

    `backend`: the `BackendKind` whose scripts these are (its variables: `backend.job_id("local")`).
    """
    scratch = plan.design.paths.scratch_dir if isinstance(plan.design.paths, PathsSpec) else None
    return {
        "backend": script_kind(cluster),
        "job_env": job_environment(cluster),
        "scratch_root": str(scratch) if scratch else None,
        "scratch_fallback": str(folder),
        "preflight": str(SWEEPFLOW_HOME / "tasks" / "core" / "preflight.py"),
        "stage": stage,
        "gpus": gpus,
        "requirements": job_requirements(stage),
        "sweepflow_home": str(SWEEPFLOW_HOME),
    }


EVAL_PACKAGES = ("accelerate", "safetensors", "pydantic", "pyyaml", "filelock")


def job_requirements(stage: str) -> list[str]:
    """Packages the preflight requires in the job's Python.

    Fine-tunes: the torchtune and torchao that sweepflow_recipes/ is written against. Evaluations:
    the inspect_ai and transformers this setup's fidelity check proved the prompts with, exactly,
    and what inspect's hf/ provider and sweepflow's evaluation helpers import.
    """
    if stage == "finetune":
        return list(RECIPE_REQUIREMENTS)
    return [*_orchestrator_pins(), *EVAL_PACKAGES]


@functools.cache
def _orchestrator_pins() -> tuple[str, ...]:
    """inspect_ai and transformers as installed here (read once: every evaluation script names them)."""
    return tuple(f"{name}=={metadata.version(name)}" for name in ("inspect_ai", "transformers"))


def _signature(task: EvalTask) -> TaskSignature:
    try:
        return task_signature(task)
    except TaskNotFound as error:  # planned where it resolved: the package or file changed since
        raise SweepflowError(f"experiment.yaml: evaluation task {task.name}: {error}") from None


def _tasks_file(plan: Plan, run: Run, job: CheckpointJob, layout: GroupLayout) -> dict[str, Any]:
    """The content of a checkpoint job's tasks file (tasks.evaluation.run_tasks reads it)."""
    tasks = {t.name: t for t in plan.design.evaluation.tasks}
    evals = layout.evals_dir(run.name)
    label = f"{run.name}" if run.is_control else f"{run.name}_epoch_{job.epoch}"
    return {
        "run": run.name,
        "epoch": epoch_label(job.epoch),
        "model": f"hf/{label}",
        "model_args": MODEL_ARGS,
        "max_tokens": plan.design.evaluation.max_tokens,
        "limit": plan.design.evaluation.limit,
        "metadata": {"run": run.name, "epoch": job.epoch if job.epoch is not None else "base",
                     "is_finetuned": not run.is_control, "design_hash": plan.design_hash},
        "tasks": [
            {"name": name, "task": eval_task_reference(tasks[name]),
             "task_args": (layout.eval_dir(run.name, name) / TASK_ARGS).relative_to(evals).as_posix(),
             "log_dir": layout.eval_logs_dir(run.name, name).relative_to(evals).as_posix()}
            for name in job.tasks
        ],
    }


def _eval_files(plan: Plan, run: Run, cluster: ClusterSettings) -> dict[str, GeneratedFile]:
    """A run's evaluation files: per task its arguments; per evaluated checkpoint one job and its tasks file."""
    if not run.evaluations:
        return {}
    files: dict[str, GeneratedFile] = {}
    layout = GroupLayout(plan.group_dir)
    evals = layout.evals_dir(run.name)
    rel = evals.relative_to(plan.group_dir).as_posix()
    tasks = {t.name: t for t in plan.design.evaluation.tasks}
    spec = lookup(run.model)
    if spec is None:  # verification refuses such a plan; an edited experiment.yaml could still name one
        raise SweepflowError(f"experiment.yaml: run {run.name}: model {run.model!r} is not a supported model")
    for task_name in sorted({job.task for job in run.evaluations}, key=list(tasks).index):
        task = tasks[task_name]
        args = task_args(run, task, _signature(task))
        files[f"{rel}/{task.name}/{TASK_ARGS}"] = GeneratedFile(
            content=render_template("inspect/task_args.yaml.j2", task=task, body=_dump(args))
        )
    files[f"{rel}/{MODEL_ARGS}"] = GeneratedFile(content=render_template(
        "inspect/model_args.yaml.j2", run=run, family=spec.family,
        body=dump_yaml(model_args(spec.family, cluster.device), literal_blocks=True),
    ))
    gpus = 1 if cluster.device == "cuda" else 0
    limit = eval_time_limit(plan, run, cluster).limit
    kind = script_kind(cluster)
    for job in run.checkpoint_jobs:
        base = run.is_control
        name, tasks_name = eval_script_name(job, kind.naming), eval_tasks_file_name(job)
        files[f"{rel}/{tasks_name}"] = GeneratedFile(content=render_template(
            "inspect/eval_tasks.yaml.j2", job=job, script_name=name, body=_dump(_tasks_file(plan, run, job, layout))
        ))
        files[f"{rel}/{name}"] = GeneratedFile(
            executable=True,
            content=render_template(
                "jobs/eval.sh.j2", plan=plan, job=job, base=base, cluster=cluster, script_name=name,
                tasks_file=tasks_name,
                directives=kind.render_header(eval_job_spec(cluster, eval_job_name(job), limit, plan.design.gpu.type)),
                **environment_context(plan, cluster, "eval", gpus, evals),
                eval_dir=str(evals),
                run_dir=str(layout.run_dir(run.name)),
                model_path=str(run.model_dir if base else layout.epoch_dir(run.name, str(job.epoch))),
                merge_adapter=not base and run.params.save_adapter_weights_only,
                base_model_dir=str(run.model_dir),
            ),
        )
    return files


def finetune_files(
    plan: Plan, run: Run, cluster: ClusterSettings, overrides: FinetuneOverrides | None = None
) -> dict[str, GeneratedFile]:
    """setup_finetune.yaml, finetune.yaml and the fine-tune's job script of one run, with a retry's overrides."""
    run_dir = GroupLayout(plan.group_dir).run_dir(run.name)
    kind = script_kind(cluster)
    script = kind.naming.script(FINETUNE_STEM)
    run = apply_overrides(run, overrides)
    gpus = plan.design.gpu.count if cluster.device == "cuda" else 0
    setup = {
        "run": run.name,
        "run_group": plan.run_group,
        "model": run.model,
        "model_dir": str(run.model_dir),
        "factors": dict(run.factors),
        "recipe": recipe_for(plan.design.gpu.count, run.params.validation, device=cluster.device),
        "gpus": plan.design.gpu.count,
        "device": cluster.device,
        **run.params.model_dump(mode="json"),
    }
    return {
        f"{run.name}/setup_finetune.yaml": GeneratedFile(
            content=render_template("torchtune/setup_finetune.yaml.j2", run=run, plan=plan, body=_dump(setup))
        ),
        f"{run.name}/finetune.yaml": GeneratedFile(
            content=render_finetune_with_overrides(run, run_dir, cluster.device, plan, overrides)
        ),
        f"{run.name}/{script}": GeneratedFile(
            executable=True,
            content=render_template(
                "jobs/finetune.sh.j2",
                plan=plan,
                run=run,
                cluster=cluster,
                script_name=script,
                directives=kind.render_header(
                    job_spec(cluster, run.name, finetune_time_limit(plan, run, cluster).limit, cluster.mem, gpus,
                             plan.design.gpu.type)
                ),
                **environment_context(plan, cluster, "finetune", gpus, run_dir),
                distributed=gpus > 1,
                recipe=recipe_for(plan.design.gpu.count, run.params.validation, device=cluster.device),
                run_dir=str(run_dir),
            ),
        ),
    }


def experiment_files(
    plan: Plan, cluster: ClusterSettings, overrides: dict[str, FinetuneOverrides] | None = None
) -> dict[str, GeneratedFile]:
    """All generated files of the run group, keyed by path relative to the group folder.

    `overrides`: run -> changes a retry made (runs_status.yaml `finetune.overrides`), kept here.
    """
    files: dict[str, GeneratedFile] = {}
    for run in plan.runs:
        if not run.is_control:
            files.update(finetune_files(plan, run, cluster, (overrides or {}).get(run.name)))
        files.update(_eval_files(plan, run, cluster))
    levels = {name: [label for label, _ in factor_levels(name, raw)] for name, raw in plan.design.factors.items()}
    files["README.md"] = GeneratedFile(
        content=render_template(
            "reports/experiment_README.md.j2", plan=plan, design=plan.design, design_type=design_type(plan.design),
            factor_levels=levels, backend=script_kind(cluster),
        )
    )
    kind = script_kind(cluster)
    if kind.submit_all_template:  # the backend's way to submit the whole group by hand, if it has one
        files["submit_all.sh"] = GeneratedFile(executable=True, content=render_template(
            kind.submit_all_template, plan=plan, runs=_submissions(plan, kind.naming)))
    return files

"""The `runs_plan.md` view of a Plan: every figure the seed's plan template shows, with its source.

Reads: a `Plan`. Writes: nothing (deliver writes the text).
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tasks.backends import job_naming
from tasks.core._templating import fmt_minutes, fmt_num, format_number, plural, render_template
from tasks.evaluation import TaskNotFound, own_data, task_signature
from tasks.model._cluster import cluster_settings
from tasks.model._design import PathsSpec, design_type
from tasks.model._factors import FACTORS, factor_levels, factor_title
from tasks.model._plan import Plan, Run
from tasks.model._site_check import SiteCheckReport
from tasks.planning._formulas import EVAL_LOAD_MIN
from tasks.planning._plan_layout import large_plan_context
from tasks.planning._time_limits import time_limit_table

_CONFIG_FIELDS = ("learning_rate", "weight_decay", "num_warmup_steps", "lora_dropout", "seed", "max_seq_len", "dtype")


# ---------------------------------------------------------------- runs_plan.md view model


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _span(values: Iterable[float], fmt: Callable[[float], str] = fmt_minutes) -> str:
    """One value, or 'low to high' when runs differ."""
    texts = _distinct(fmt(v) for v in sorted(values))
    return texts[0] if len(texts) == 1 else f"{texts[0]} to {texts[-1]}"


def _levels_text(name: str, raw: Any) -> str:
    pairs = factor_levels(name, raw)
    if name == "dataset":
        return ", ".join(f"{label} (`{value}`)" for label, value in pairs)
    if name == "packed" and not isinstance(raw, dict):
        return ", ".join(label for label, _ in pairs)
    if isinstance(raw, dict):
        show = (lambda v: f'"{v}"') if name == "system_prompt" else format_number
        return ", ".join(f"{label} = {show(value)}" for label, value in pairs)
    return ", ".join(format_number(value) for _, value in pairs)


def _factor_value(run: Run, factor: str) -> str:
    if factor not in FACTORS or FACTORS[factor].shown_by_label or not hasattr(run.params, factor):
        return run.factors.get(factor, "-")
    return format_number(getattr(run.params, factor))


def _job_formula(runs: list[Run], base: bool) -> str:
    """'4 runs × 2 tasks × 1 epoch = 8 evaluations' (terms added when the matrix is uneven)."""
    shapes: Counter[tuple[int, int]] = Counter()
    for run in runs:
        shapes[(len({j.task for j in run.evaluations}), 1 if base else len({j.epoch for j in run.evaluations}))] += 1
    last = (lambda n: "1 eval") if base else (lambda n: plural(n, "epoch"))
    terms = [f"{plural(n, 'run')} × {plural(t, 'task')} × {last(e)}" for (t, e), n in shapes.items()]
    total = sum(len(run.evaluations) for run in runs)
    return f"{' + '.join(terms)} = {plural(total, 'evaluation')}"


def _epochs_text(plan: Plan) -> str:
    spec = plan.design.evaluation.epochs
    refs = _distinct(j.epoch for run in plan.finetune_runs for j in run.evaluations)
    listed = ", ".join(f"epoch_{e}" for e in refs)
    if spec == "best":
        return "best epoch by validation loss (chosen after training)"
    if spec == "last":
        return f"last epoch only ({listed})"
    if spec == "all":
        return f"all epochs ({listed})"
    return f"selected epochs ({listed})"


def _steps_text(samples: int | None, density: float, packed: bool, batch: int, accum: int, steps: int) -> str:
    """The seed's 'samples/bs = steps', shown only when it reproduces the estimate's number."""
    per_step = f"batch_size {batch}" if accum == 1 else f"(batch_size {batch} × {accum} accumulation steps)"
    if samples:
        if packed and density > 1 and steps in (
            math.ceil(samples / density / (batch * accum)), round(samples / density / (batch * accum))
        ):
            return f"{samples} samples ÷ {fmt_num(density)} per packed sequence ÷ {per_step} = {steps} steps"
        if steps in (math.ceil(samples / (batch * accum)), samples // (batch * accum)):
            return f"{samples}/{batch} = {steps} steps" if accum == 1 else f"{samples} ÷ {per_step} = {steps} steps"
    return f"{steps} steps at {per_step}"


def _model_block(plan: Plan, model: str, train_samples: dict[str, int]) -> dict[str, Any]:
    est = plan.estimates
    me = est.per_model[model]
    runs = [r for r in plan.finetune_runs if r.model == model and r.name in est.runs]  # each with its estimate
    run_est = [est.runs[r.name] for r in runs]
    gpus = plan.design.gpu.count
    steps = _distinct(
        _steps_text(train_samples.get(str(r.params.dataset.path)), me.packing_density.value, r.params.packed,
                    e.batch_size, r.params.gradient_accumulation_steps, e.steps_per_epoch)
        for r, e in zip(runs, run_est, strict=True)
    )
    all_runs = [r for r in plan.runs if r.model == model]
    tasks = Counter(j.task for r in all_runs for j in r.evaluations)
    epochs = _distinct(sorted(r.params.epochs for r in runs))
    per_run = _distinct(e.train_minutes for e in run_est)
    return {
        "model": model,
        "est": me,
        "n_runs": len(runs),
        "steps": "; ".join(steps),
        "minutes_per_epoch": _span(e.minutes_per_epoch for e in run_est),
        "epochs": plural(epochs[0], "epoch") if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]} epochs",
        "per_run": _span(per_run),
        "uniform": len(per_run) == 1,
        "sequential": sum(e.train_minutes for e in run_est),
        "gpu_hours": sum(e.train_minutes for e in run_est) * gpus / 60,
        "checkpoints": sum(r.params.epochs for r in runs),
        "uniform_epochs": len(epochs) == 1,
        "disk_gib": est.disk.per_model_gib.get(model, 0.0),
        "eval_jobs": sum(len(r.checkpoint_jobs) for r in all_runs),
        "eval_tasks": ", ".join(f"{task} × {n}" for task, n in tasks.items()),
        "eval_minutes": sum(est.runs[r.name].eval_minutes for r in all_runs if r.name in est.runs),
    }


def _batches(plan: Plan, model: str) -> dict[str, Any]:
    """Batch sizes of a model's runs, and the effective batch (x gradient accumulation x GPUs)."""
    pairs = [(plan.estimates.runs[r.name].batch_size, r.params.gradient_accumulation_steps)
             for r in plan.finetune_runs if r.model == model and r.name in plan.estimates.runs]
    return {
        "model": model,
        "figure": plan.estimates.per_model[model].batch_size,
        "sizes": "/".join(str(b) for b in _distinct(b for b, _ in pairs)),
        "effective": "/".join(str(b * ga * plan.design.gpu.count) for b, ga in _distinct(pairs)),
    }


def _value_text(plan: Plan, getter: Callable[[Run], Any], fmt: Callable[[Any], str] = str) -> str:
    """The one value all fine-tunes share, or each value when a factor varies it."""
    values = _distinct(getter(r) for r in plan.finetune_runs)
    if len(values) == 1:
        return fmt(values[0])
    return "varies by run: " + ", ".join(fmt(v) for v in values)


def _run_rows(plan: Plan, extra: list[str]) -> list[dict[str, Any]]:
    """The runs table: one row per run, with the factors beyond model and rank in `extra`."""
    rows = []
    for run in plan.runs:
        run_est = plan.estimates.runs.get(run.name)
        control = run.is_control
        batch = run_est.batch_size if run_est else run.params.batch_size
        rows.append({
            "name": run.name,
            "model": run.model,
            "rank": "-" if control else str(run.params.lora_rank),
            "extra": ["-" if control else _factor_value(run, f) for f in extra],
            "batch": "-" if control else (batch or "auto"),
            "type": "Control (base model)" if control else "Fine-tuned",
            "time": "eval only" if control else (fmt_minutes(run_est.train_minutes) if run_est else "-"),
        })
    return rows


def _matrix(plan: Plan, task_names: list[str]) -> list[dict[str, Any]]:
    """The evaluation matrix: which tasks each run is evaluated on, and at which epochs."""
    rows = []
    for run in plan.runs:
        tasks = {j.task for j in run.evaluations}
        keys = _distinct(j.key.removeprefix(j.task + "_") for j in run.evaluations if j.epoch is not None)
        which = (
            "All evals" if len(tasks) == len(task_names)
            else "Only " + ", ".join(t for t in task_names if t in tasks)
        )
        when = "base model, once per task" if run.is_control else ", ".join(keys)
        rows.append({
            "name": run.name,
            "marks": ["✓" if t in tasks else "-" for t in task_names],
            "notes": f"{which} ({when})",
        })
    return rows


def _source_flags(plan: Plan) -> dict[str, bool]:
    """Whether the figures come from prior logs (all of them, all training ones, any training one)."""
    per_model = plan.estimates.per_model.values()
    train = [f.kind for me in per_model
             for f in (me.speed_it_s, me.checkpoint_gib_per_epoch, me.batch_size, me.packing_density)]
    kinds = train + [me.eval_minutes.kind for me in per_model]
    measured = ("measured", "scaled")
    return {
        "all_prior": "default" not in kinds and any(k in measured for k in kinds),
        "train_prior_all": "default" not in train and any(k in measured for k in train),
        "train_prior_any": any(k in measured for k in train),
    }


def _scenario_context(plan: Plan) -> dict[str, Any]:
    """The wall-clock scenarios (parallel, sequential, mixed) and the parallel case's figures."""
    est, gpus = plan.estimates, plan.design.gpu.count
    order = {"parallel": 0, "sequential": 1, "mixed": 2}
    scenarios = sorted(est.scenarios, key=lambda s: order[s.name])
    parallel = next((s for s in scenarios if s.name == "parallel"), None)
    return {
        "scenarios": scenarios,
        "parallel_gpus": parallel.gpus if parallel else len(plan.finetune_runs) * gpus,
        "train_parallel_gpus": len(plan.finetune_runs) * gpus,
        "parallel_train": (
            parallel.training_minutes if parallel
            else max((e.train_minutes for e in est.runs.values()), default=0.0)
        ),
        "parallel_eval": parallel.eval_minutes if parallel else 0.0,
    }


def _parameter_context(plan: Plan) -> dict[str, Any]:
    """The training parameters section: each value, or each run's value when a factor varies it."""
    return {
        "epochs": _value_text(plan, lambda r: r.params.epochs),
        "packed": _value_text(plan, lambda r: r.params.packed),
        "validation": _value_text(plan, lambda r: r.params.validation, lambda v: "yes" if v else "no"),
        "any_packed": any(r.params.packed for r in plan.finetune_runs),
        "densities": [(me.model, me.packing_density) for me in plan.estimates.per_model.values()],
        "grad_accum": _value_text(plan, lambda r: r.params.gradient_accumulation_steps),
        "alphas": _value_text(plan, lambda r: f"{r.params.lora_alpha} (rank {r.params.lora_rank})"),
        "p": {name: _value_text(plan, operator.attrgetter(f"params.{name}"), format_number) for name in _CONFIG_FIELDS},
        "system_prompts": _distinct(r.params.system_prompt for r in plan.finetune_runs),
    }


def _task_rows(plan: Plan) -> list[dict[str, Any]]:
    """Per evaluation task: what inspect is given, which data it evaluates, and the arguments mapped to it."""
    rows = []
    for task in plan.design.evaluation.tasks:
        try:
            reads_own = own_data(task, task_signature(task))
        except TaskNotFound:  # verification refused such a plan; a hand-built one still renders
            reads_own = bool(task.own_data)
        if task.inspect_task is not None:
            source = f"`{task.inspect_task}` (registered)"
        else:
            function = f" (`@{task.task_function}`)" if task.task_function else ""
            source = f"`{plan.resources.eval_scripts.get(task.name, task.script)}`{function}"
        named = plan.resources.eval_datasets.get(task.name, task.dataset)
        if reads_own:
            data = "Own data (the task reads it)" + (f": `{named}`" if named else "")
        else:
            data = f"`{named}`" if named else "Same as training (test split)"
        args = ", ".join(f"`{name}` = `{value}`" for name, value in task.args.items())
        rows.append({"task": task, "source": source, "data": data, "args": args})
    return rows


def plan_context(plan: Plan) -> dict[str, Any]:
    """Everything reports/runs_plan.md.j2 shows, computed from the Plan (no numbers are made up here)."""
    design, est, res = plan.design, plan.estimates, plan.resources
    paths = design.paths if isinstance(design.paths, PathsSpec) else None
    extra = [f for f in design.factors if f not in ("lora_rank", "batch_size")]
    factor_rows = ([("Model", ", ".join(design.models))] if len(design.models) > 1 else []) + [
        (factor_title(name), _levels_text(name, raw)) for name, raw in design.factors.items()
    ]
    task_names = [t.name for t in design.evaluation.tasks]
    train_samples = {str(d.path): d.splits.train for d in res.datasets}
    n_evals = len(plan.eval_jobs)
    limits = time_limit_table(plan)
    return {
        "plan": plan,
        "design": design,
        "naming": job_naming(cluster_settings(design)),  # the backend's job file names
        "est": est,
        "res": res,
        "paths": paths,
        "models_dir": paths.models_dir if paths else (res.models[0].path.parent if res.models else Path(".")),
        "design_type": design_type(design),
        "factor_rows": factor_rows,
        "extra_titles": [factor_title(f) for f in extra],
        "run_rows": _run_rows(plan, extra),
        "task_names": task_names,
        "task_rows": _task_rows(plan),
        "matrix": _matrix(plan, task_names),
        "epochs_text": _epochs_text(plan),
        "finetune_formula": _job_formula(plan.finetune_runs, base=False),
        "base_formula": _job_formula(plan.control_runs, base=True) if plan.control_runs else None,
        "n_evals": n_evals,
        "n_eval_jobs": len(plan.checkpoint_jobs),
        "eval_load_s": EVAL_LOAD_MIN * 60,
        "eval_mb_each": est.disk.eval_logs_gib * 1024 / n_evals if n_evals else 0.0,
        "models": [_model_block(plan, m, train_samples) for m in design.models if m in est.per_model],
        **_source_flags(plan),
        **_scenario_context(plan),
        **_parameter_context(plan),
        "batch_by_model": [_batches(plan, m) for m in design.models if m in est.per_model],
        **limits,
        **large_plan_context(plan, limits["time_limit_rows"]),  # issue 20: large plans stay readable
        "scratch": (paths.scratch_dir or paths.output_dir) if paths else plan.group_dir.parent,
        "replicate_seeds": _replicate_seeds(plan),
    }


def _replicate_seeds(plan: Plan) -> list[tuple[int, list[int]]]:
    """(replicate, its distinct seeds over the cells) in replicate order: what runs_plan.md's overview lists."""
    seeds: dict[int, list[int]] = {}
    for run in plan.finetune_runs:
        mine = seeds.setdefault(run.replicate, [])
        if run.params.seed not in mine:
            mine.append(run.params.seed)
    return sorted(seeds.items())


def render_plan_markdown(plan: Plan) -> str:
    """runs_plan.md of a plan: the seed's template, every section, every figure with its source."""
    return render_template("reports/runs_plan.md.j2", **plan_context(plan))


def render_site_check_markdown(report: SiteCheckReport) -> str:
    """The "Site Check" section alone (the check-site flow's artifact)."""
    return render_template("reports/_site_check.md.j2", check=report)

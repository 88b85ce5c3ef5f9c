"""Expand a design into runs and evaluation jobs, deterministically, with the seed's names.

Reads: an `ExperimentDesign`. Writes: nothing.
Fine-tuned runs are every model x every factor-level combination, named
`{model}_{other factor labels}_rank{r}`; `controls: true` adds `{model}_base`.
Evaluation jobs follow the matrix: run x task x evaluated epoch (base runs: no epoch).
The run count is computed from the design first (`run_multipliers`) and a design over the
maximum (`$SWEEPFLOW_MAX_RUNS`, default 2000) is refused before any run is built.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tasks.core._errors import DesignError, Problem
from tasks.model._design import SAFE_LABEL, SAFE_NAME, DatasetSpec, ExperimentDesign, TrainingSpec
from tasks.model._factors import factor_levels
from tasks.model._plan import EpochRef, EvalJob, Run, RunParams
from tasks.training._registry import known_models, lookup

MAX_RUNS_ENV = "SWEEPFLOW_MAX_RUNS"
DEFAULT_MAX_RUNS = 2000  # runs of one design; a larger sweep is almost surely a typo in a level list


def _check_factors(design: ExperimentDesign) -> tuple[dict[str, list[tuple[str, Any]]], list[Problem]]:
    problems: list[Problem] = []
    levels: dict[str, list[tuple[str, Any]]] = {}
    for name, raw in design.factors.items():
        field = f"factors.{name}"
        try:
            pairs = factor_levels(name, raw)
        except ValueError as error:
            problems.append(Problem(field=field, message=str(error)))
            continue
        for i, (label, value) in enumerate(pairs):
            if name == "lora_rank" and isinstance(raw, dict):
                label = label if label.startswith("rank") else f"rank{label}"
                pairs[i] = (label, value)
            if not SAFE_LABEL.fullmatch(pairs[i][0]):
                problems.append(Problem(
                    field=f"{field}[{i}]",
                    message=f"level label {pairs[i][0]!r} may contain only letters, digits, '.' and '-'",
                ))
            if name in TrainingSpec.model_fields:  # a training setting: each level must be a valid value
                try:
                    TrainingSpec.model_validate({**design.training.model_dump(), name: value})
                except ValidationError as error:
                    msg = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
                    problems.append(Problem(field=f"{field}[{i}]", message=f"level {value!r}: {msg}"))
        labels = [label for label, _ in pairs]
        repeated = sorted({lab for lab in labels if labels.count(lab) > 1})
        if repeated:
            problems.append(Problem(field=field, message=(
                f"two levels would give runs the same name (label {', '.join(map(repr, repeated))} repeats); "
                "name the levels with a mapping {label: value}")))
        levels[name] = pairs
    return levels, problems


def _eval_epochs(design: ExperimentDesign, epochs: int, run: str) -> tuple[list[EpochRef], list[Problem]]:
    spec = design.evaluation.epochs
    chosen: list[EpochRef]
    if spec == "last":
        chosen = [epochs - 1]
        return chosen, []
    if spec == "all":
        chosen = list(range(epochs))
        return chosen, []
    if spec == "best":
        return ["best"], []
    bad = [e for e in spec if e >= epochs]
    if bad:
        # no run name in the message: the same problem for every run is then reported once
        return [], [Problem(
            field="evaluation.epochs",
            message=f"there is no epoch {', '.join(map(str, bad))}: "
            f"runs of {epochs} epoch(s) save epoch_0..epoch_{epochs - 1}",
        )]
    chosen = list(sorted(set(spec)))
    return chosen, []


def _params(design: ExperimentDesign, model: str, overrides: dict[str, Any]) -> RunParams:
    training = TrainingSpec.model_validate(
        {**design.training.model_dump(), **{k: v for k, v in overrides.items() if k != "dataset"}}
    )
    dataset = design.dataset
    if "dataset" in overrides:
        dataset = DatasetSpec.model_validate({**design.dataset.model_dump(), "path": Path(str(overrides["dataset"]))})
    batch = training.batch_size
    batch_size = batch.get(model) if isinstance(batch, dict) else (None if batch == "auto" else batch)
    # every RunParams field that is a training setting is copied by name: a new setting needs no line here
    settings = {name: getattr(training, name) for name in RunParams.model_fields if name in TrainingSpec.model_fields}
    settings.update(lora_alpha=2 * training.lora_rank, batch_size=batch_size, dataset=dataset)
    return RunParams(**settings)


def run_name(model: str, labels: dict[str, str], rank: int) -> str:
    """`{model}_{other factors in design order}_rank{rank}` (the seed's convention)."""
    parts = [model] + [label for factor, label in labels.items() if factor != "lora_rank"]
    parts.append(labels.get("lora_rank", f"rank{rank}"))
    return "_".join(parts)


REPLICATE_SEED_STEP = 1000  # replicate r trains with the cell's seed + 1000 x (r - 1)


def replicate_seed(seed: int, replicate: int) -> int:
    """The training seed of a cell's `replicate` (1-based): deterministic, distinct, and readable in configs."""
    return seed + REPLICATE_SEED_STEP * (replicate - 1)


def _replicates(design: ExperimentDesign, run: Run) -> list[Run]:
    """The design's replicates of one fine-tuned cell, named `{cell}_rep{r}` when there is more than one."""
    if design.replicates == 1:
        return [run]
    return [
        run.model_copy(update={
            "name": f"{run.name}_rep{r}", "replicate": r, "cell": run.name,
            "params": run.params.model_copy(update={"seed": replicate_seed(run.params.seed, r)}),
        })
        for r in range(1, design.replicates + 1)
    ]


def _same_training(runs: list[Run]) -> list[Problem]:
    """Two fine-tunes with identical settings are one run twice (e.g. a seed level equal to a replicate's seed)."""
    seen: dict[str, str] = {}
    problems = []
    for run in runs:
        if run.is_control:
            continue
        key = f"{run.model}|{run.params.model_dump_json()}"
        if key in seen:
            problems.append(Problem(field="factors", message=(
                f"runs {seen[key]!r} and {run.name!r} would train with identical settings (seed "
                f"{run.params.seed}); replicate r uses the seed + {REPLICATE_SEED_STEP} x (r - 1), so give seed "
                "levels that differ from those")))
        seen.setdefault(key, run.name)
    return problems


def expand_design(design: ExperimentDesign) -> list[Run]:
    """All runs of the design, fine-tuned first (models x factor levels x replicates), then controls."""
    problems: list[Problem] = []
    for i, model in enumerate(design.models):
        if lookup(model) is None:
            problems.append(Problem(
                field=f"models[{i}]", message=f"unknown model {model!r}; supported: {', '.join(known_models())}"
            ))
    check_run_count(design)  # before any level is checked or any run built
    levels, factor_problems = _check_factors(design)
    problems += factor_problems
    if problems:
        raise DesignError(problems)

    models_dir = Path(getattr(design.paths, "models_dir", "."))
    runs: list[Run] = []
    combos = list(itertools.product(*[levels[f] for f in levels])) if levels else [()]
    for model in design.models:
        for combo in combos:
            labels = {factor: label for factor, (label, _) in zip(levels, combo, strict=True)}
            values = {factor: value for factor, (_, value) in zip(levels, combo, strict=True)}
            params = _params(design, model, values)
            name = run_name(model, labels, params.lora_rank)
            runs += _replicates(design, Run(
                name=name, kind="finetune", model=model, model_dir=models_dir / model, factors=labels, params=params
            ))
    if design.controls:
        for model in design.models:
            params = _params(design, model, {})
            runs.append(Run(
                name=f"{model}_base", kind="control", model=model, model_dir=models_dir / model, params=params
            ))

    names = [r.name for r in runs]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(
            field="factors", message=f"two runs would both be named {name!r}; give the levels distinct labels"
        ))
    for name in names:
        if not SAFE_NAME.fullmatch(name):
            problems.append(Problem(
                field="factors", message=f"run name {name!r} may contain only letters, digits, '.', '_' and '-'"
            ))
    problems += _same_training(runs)
    if problems:
        raise DesignError(problems)
    return _attach_evaluations(design, runs)


def _attach_evaluations(design: ExperimentDesign, runs: list[Run]) -> list[Run]:
    problems: list[Problem] = []
    tasks = [t.name for t in design.evaluation.tasks]
    matrix = design.evaluation.matrix or {}
    known = {r.name for r in runs} | {r.cell_name for r in runs}  # a cell names all its replicates
    for run_key, run_tasks in matrix.items():
        if run_key not in known:
            problems.append(Problem(
                field=f"evaluation.matrix.{run_key}",
                message=f"no run is named {run_key!r}; runs are: {', '.join(sorted(known))}",
            ))
        for task in run_tasks:
            if task not in tasks:
                problems.append(Problem(
                    field=f"evaluation.matrix.{run_key}",
                    message=f"unknown task {task!r}; tasks are: {', '.join(tasks)}",
                ))
        if not run_tasks:
            problems.append(Problem(
                field=f"evaluation.matrix.{run_key}", message="every run needs at least one evaluation task"
            ))
    result: list[Run] = []
    for run in runs:
        run_tasks = [t for t in tasks if t in matrix.get(run.name, matrix.get(run.cell_name, tasks))]
        if run.is_control:
            epochs: list[EpochRef] = [None]
        else:
            epochs, epoch_problems = _eval_epochs(design, run.params.epochs, run.name)
            problems += epoch_problems
        jobs = [EvalJob(run=run.name, task=t, epoch=e) for t in run_tasks for e in epochs]
        result.append(run.model_copy(update={"evaluations": jobs}))
    if problems:
        # the same problem can arise once per run (e.g. an epoch list); report it once
        unique = list({(p.field, p.message): p for p in problems}.values())
        raise DesignError(unique)
    return result


def run_multipliers(design: ExperimentDesign) -> list[tuple[str, int]]:
    """The factors whose product is the number of fine-tuned runs: (what, how many), in design order.

    A new multiplier of the fine-tuned runs is one more entry here (replicates count only above 1).
    """
    replicates = [("replicates", design.replicates)] if design.replicates > 1 else []
    return [("models", len(design.models)), *((f"factors.{n}", len(v)) for n, v in design.factors.items()),
            *replicates]


def count_runs(design: ExperimentDesign) -> int:
    """How many runs the design expands to: models x factor levels x replicates, plus one control per model."""
    return math.prod(n for _, n in run_multipliers(design)) + (len(design.models) if design.controls else 0)


def max_runs() -> int:
    """The most runs one design may expand to: $SWEEPFLOW_MAX_RUNS, else `DEFAULT_MAX_RUNS`."""
    try:
        return max(1, int(os.environ.get(MAX_RUNS_ENV) or DEFAULT_MAX_RUNS))
    except ValueError:
        return DEFAULT_MAX_RUNS


def check_run_count(design: ExperimentDesign, maximum: int | None = None) -> None:
    """Refuse, before any run is built, a design over `maximum` runs (default `max_runs()`), naming the factors."""
    limit = maximum or max_runs()
    total = count_runs(design)
    if total <= limit:
        return
    product = " x ".join(f"{n:,} {what}" for what, n in run_multipliers(design))
    controls = f" + {len(design.models):,} controls" if design.controls else ""
    raise DesignError([Problem(field="factors", message=(
        f"{total:,} runs ({product}{controls}) is over the maximum of {limit:,} runs; use fewer levels "
        f"(or raise the maximum: ${MAX_RUNS_ENV})"))])

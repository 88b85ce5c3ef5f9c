"""Compose the planning pipeline: expand -> verify -> estimate -> check disk -> Plan.

Reads: the resources a design names (model folders, datasets, eval scripts, prior logs).
Writes: nothing (delivery is `tasks/planning/_deliver.py`, after approval).
Each stage is a plain function so the Prefect flow can wrap it as a task and tests can call it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from datetime import date as date_cls
from pathlib import Path
from typing import Any

from tasks.backends import BACKENDS
from tasks.core._errors import DesignError, Problem, SweepflowError
from tasks.model._cluster import cluster_settings, job_env_problem
from tasks.model._design import AnalysisSpec, ExperimentDesign, PathsSpec
from tasks.model._layout import pilot_of
from tasks.model._plan import Estimates, Plan, Run, VerifiedResources
from tasks.planning._accuracy import accuracy_text
from tasks.planning._estimate import estimate_plan
from tasks.planning._expand import expand_design
from tasks.planning._leakage import eval_dataset_problems, leakage_problems
from tasks.planning._power import statistical_power
from tasks.planning._prior_evals import scan_prior_evals
from tasks.planning._training_data import training_tokens
from tasks.planning._verify import HEADING as VERIFY_HEADING
from tasks.planning._verify import check_disk, verify_resources
from tasks.training._checkpoint_size import CheckpointSize, checkpoint_size
from tasks.training._config import recipe_for
from tasks.training._prior_logs import scan_prior_runs
from tasks.training._registry import lookup

# Settings added after designs were first hashed: left out while unset, so that an earlier run group of the
# same design keeps its hash (run-experiment resumes it by hash).
_LATER_SETTINGS = (("training", "max_steps_per_epoch"),)
_LATER_FLAGS = (("training", "accept_truncation"), ("evaluation", "accept_train_test_overlap"))  # left out while false
# Top-level settings added later: left out while at their default, for the same reason.
_LATER_DEFAULTS = {"replicates": 1, "analysis": AnalysisSpec().model_dump(mode="json")}
# Evaluation-task settings added later (issue 21): left out of each task while unset.
_LATER_TASK_SETTINGS: dict[str, Any] = {"inspect_task": None, "args": {}, "own_data": None}


def design_hash(design: ExperimentDesign) -> str:
    """sha256 of the canonical JSON of the resolved design (identifies the experiment)."""
    data = design.model_dump(mode="json")
    for section, key in _LATER_SETTINGS:
        if data.get(section, {}).get(key) is None:
            data[section].pop(key, None)
    for section, key in _LATER_FLAGS:
        if data.get(section, {}).get(key) is False:
            data[section].pop(key, None)
    for key, default in _LATER_DEFAULTS.items():
        if data.get(key) == default:
            data.pop(key, None)
    for task in data["evaluation"]["tasks"]:
        for key, unset in _LATER_TASK_SETTINGS.items():
            if task.get(key) == unset:
                task.pop(key, None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def site_paths(design: ExperimentDesign) -> PathsSpec:
    """The design's paths; `DesignError` while they are still a block name (load the block first)."""
    if isinstance(design.paths, str):
        raise DesignError([Problem(
            field="paths",
            message=f"names the block {design.paths!r}, which must be loaded first (the plan-runs flow does this)",
        )])
    return design.paths


def run_group_name(design: ExperimentDesign, day: str | None = None) -> str:
    """`{design name}_{day}` (default: today); `DesignError` when `day` is not a date."""
    day = day or date_cls.today().isoformat()
    try:
        date_cls.fromisoformat(day)
    except ValueError:
        raise DesignError([Problem(field="date", message=f"{day!r} is not a date like 2025-10-18")]) from None
    return f"{design.name}_{day}"


def eval_sample_counts(design: ExperimentDesign, resources: VerifiedResources) -> dict[str, int]:
    """Test samples per evaluation task: its own dataset when given, else the training test split."""
    default = resources.datasets[0].splits.test if resources.datasets else 0
    counts: dict[str, int] = {}
    for task in design.evaluation.tasks:
        path = resources.eval_datasets.get(task.name)
        counts[task.name] = _count_records(path, design.dataset.test_split) if path else default
        if design.evaluation.limit:
            counts[task.name] = min(counts[task.name], design.evaluation.limit)
    return counts


def _count_records(path: Path, split: str) -> int:
    """Records in an eval dataset: a JSON list, a JSON object with the test split, or JSON lines."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return sum(1 for line in text.splitlines() if line.strip())
    if isinstance(data, dict):
        return len(data.get(split, []))
    return len(data) if isinstance(data, list) else 0


def prior_run_folders(paths: PathsSpec, design_name: str | None = None) -> tuple[list[Path], bool]:
    """(folders searched for prior logs, whether they are the default).

    The folders are `paths.prior_runs`, or, when it names none, `paths.output_dir` (the earlier
    run groups: sweepflow learns from them). With `design_name`, the pilot groups of that design
    under `output_dir` are searched too, whatever `prior_runs` says.
    """
    out = Path(paths.output_dir)
    pilots = sorted(p for p in out.glob(f"{design_name}-pilot-*") if pilot_of(p) == design_name) \
        if design_name and out.is_dir() else []
    if paths.prior_runs:
        return list(paths.prior_runs) + pilots, False
    return ([paths.output_dir] if Path(paths.output_dir).is_dir() else []), True


def _own_pilot(group: Path, design: ExperimentDesign) -> bool:
    return pilot_of(group) == design.name


def checkpoint_sizes(runs: list[Run], resources: VerifiedResources) -> dict[str, CheckpointSize | None]:
    """Run name -> one epoch's checkpoint as torchtune writes it, from its model folder's dims and files."""
    folders = {m.name: Path(m.path) for m in resources.models}
    sizes: dict[tuple, CheckpointSize | None] = {}
    out: dict[str, CheckpointSize | None] = {}
    for run in runs:
        p, spec = run.params, lookup(run.model)
        key = (run.model, p.lora_rank, tuple(p.lora_attn_modules), p.apply_lora_to_mlp, p.save_adapter_weights_only,
               p.dtype)
        if key not in sizes:
            folder = folders.get(run.model)
            sizes[key] = None if folder is None else checkpoint_size(
                folder, list(spec.checkpoint_files) if spec else [], p.lora_rank, list(p.lora_attn_modules),
                p.apply_lora_to_mlp, p.save_adapter_weights_only, p.dtype)
        out[run.name] = sizes[key]
    return out


def estimate(design: ExperimentDesign, runs: list[Run], resources: VerifiedResources,
             priors_from: list[Path] | None = None) -> tuple[list[Run], Estimates]:
    """Fill "auto" batch sizes and estimate every run from the prior logs `prior_run_folders` names.

    `priors_from`: exactly these folders instead (benchmarks compare what each source predicts).
    Only this design's own pilot counts as a pilot; another design's pilot is an earlier run like any.
    """
    folders, default = (list(priors_from), False) if priors_from is not None else \
        prior_run_folders(site_paths(design), design.name)
    priors = scan_prior_runs(folders)
    if default:  # earlier run groups: only fine-tunes that completed teach anything
        priors.runs = [p for p in priors.runs if p.completed]
    for prior in priors.runs:
        prior.pilot = prior.pilot and _own_pilot(prior.log_path.parent.parent, design)
    train = {d.path: d.splits.train for d in resources.datasets}
    prior_evals = [e.model_copy(update={"pilot": e.pilot and _own_pilot(e.group, design)})
                   for e in scan_prior_evals(folders)]
    tokens, token_notes = training_tokens(design, runs, resources)
    runs, estimates = estimate_plan(design, runs, train, eval_sample_counts(design, resources), priors, prior_evals,
                                    checkpoint_sizes(runs, resources), tokens)
    estimates.notes += token_notes
    estimates.accuracy = accuracy_text(folders)
    if default and priors.runs:
        estimates.notes.append(
            f"paths.prior_runs names no folder, so the earlier run groups under {folders[0]} were searched: "
            f"estimates learn from {len(priors.runs)} completed fine-tune log(s) there (sources say which).")
    return runs, estimates


def _check_job_env(design: ExperimentDesign) -> None:
    """A CUDA design on a backend whose jobs run elsewhere must name their environment (or say it means ours)."""
    if design.cluster is None or isinstance(design.cluster, str):  # no settings, or a block not yet loaded
        return
    cluster = cluster_settings(design)
    kind = BACKENDS.get(cluster.backend)  # `auto` and unknown names: no (an unknown one is refused when selected)
    problem = job_env_problem(cluster, remote=kind is not None and kind.remote)
    if problem:
        raise DesignError([problem], heading="The cluster settings have problems")


def check_evaluation_data(design: ExperimentDesign, runs: list[Run], resources: VerifiedResources) -> None:
    """Every task's own dataset parsed; train/test overlap refused unless the design accepts it (`DesignError`)."""
    problems = eval_dataset_problems(design, resources.eval_datasets)
    if problems:
        raise DesignError(problems, heading=VERIFY_HEADING)
    leaks = leakage_problems(design, runs, resources.eval_datasets)
    if leaks:
        raise DesignError(leaks, heading="Evaluated test data overlaps the training data")


def build_plan(design: ExperimentDesign, date: str | None = None, now: datetime | None = None,
               priors_from: list[Path] | None = None) -> Plan:
    """The whole plan, or a DesignError listing every problem. Writes nothing.

    `priors_from`: estimate from exactly these folders' prior runs (default: `prior_run_folders`).
    """
    paths = site_paths(design)
    group = run_group_name(design, date)
    _check_job_env(design)
    runs = expand_design(design)
    resources = verify_resources(design, runs)
    check_evaluation_data(design, runs, resources)
    runs, estimates = estimate(design, runs, resources, priors_from)
    disk_problems = check_disk(resources, estimates.disk.total_gib, paths.output_dir)
    if disk_problems:
        raise DesignError(disk_problems, heading="Not enough disk for this plan")
    created = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    folders = priors_from if priors_from is not None else prior_run_folders(paths, design.name)[0]
    power = statistical_power(design, runs, eval_sample_counts(design, resources), folders)
    return Plan(
        power=power,
        run_group=group,
        created=created,
        design_hash=design_hash(design),
        design=design,
        group_dir=paths.output_dir / group,
        recipe=recipe_for(design.gpu.count, design.training.validation),
        runs=runs,
        resources=resources,
        estimates=estimates,
    )


def existing_group_date(design: ExperimentDesign, digest: str) -> str | None:
    """Date of the newest run group under output_dir that holds this very design, if any."""
    from tasks.core._files import read_yaml  # local: keeps the planner's import surface small

    paths = site_paths(design)
    found: list[str] = []
    for plan_file in sorted(paths.output_dir.glob(f"{design.name}_*/experiment.yaml")):
        day = plan_file.parent.name.removeprefix(f"{design.name}_")
        try:
            date_cls.fromisoformat(day)
            data = read_yaml(plan_file)
        except (ValueError, OSError, SweepflowError):  # an unreadable group is not ours to resume
            continue
        if isinstance(data, dict) and data.get("design_hash") == digest:
            found.append(day)
    return max(found) if found else None

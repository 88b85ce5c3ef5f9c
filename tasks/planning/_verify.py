"""Verify that everything a design names exists and is usable, before anything is planned.

Reads: the model folders under `paths.models_dir` (config.json, weight and tokenizer files), every
dataset JSON file the runs train on (parsed, counted and hashed), every evaluation script
and evaluation dataset, and the free disk space under `paths.output_dir`.
Writes: nothing. `verify_resources` returns `VerifiedResources`, or raises one `DesignError`
listing every problem found, each naming the design field and the path on disk.
`prior_runs` folders are not checked here: a missing one only means fewer prior logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tasks.core._errors import DesignError, Problem
from tasks.core._files import format_gib
from tasks.evaluation._inspect_tasks import TaskNotFound, task_signature
from tasks.evaluation._task_contract import contract_problems
from tasks.model._design import DatasetSpec, EvalTask, ExperimentDesign, PathsSpec
from tasks.model._plan import DatasetInfo, ModelInfo, Run, SplitCounts, VerifiedResources
from tasks.training._registry import REGISTRY, ModelSpec, lookup

HEADING = "Resources are missing or invalid"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
GIB = 1024**3
LEAK_EXAMPLES = 3


def _paths(design: ExperimentDesign) -> PathsSpec:
    if isinstance(design.paths, str):
        raise DesignError(
            [Problem(
                field="paths",
                message=f"names the paths block {design.paths!r}, which must be loaded (resolved to its fields) "
                "before resources are verified",
            )],
            heading=HEADING,
        )
    return design.paths


def _folder_size(folder: Path) -> int:
    total = 0
    for item in folder.rglob("*"):
        try:
            if item.is_file():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def _check_model(model: str, field: str, folder: Path, problems: list[Problem]) -> ModelInfo | None:
    if not folder.is_dir():
        what = (
            "is not a folder" if folder.exists()
            else "model folder not found (download it, e.g. with `huggingface-cli download`)"
        )
        problems.append(Problem(field=field, message=f"{model}: {what}", path=str(folder)))
        return None
    ok = True
    if not (folder / "config.json").is_file():
        problems.append(Problem(
            field=field, message=f"{model}: config.json is missing", path=str(folder / "config.json")
        ))
        ok = False
    spec = lookup(model)
    present = sorted(p.name for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file())
    if spec is not None:
        missing = [f for f in spec.checkpoint_files if not (folder / f).is_file()]
        if missing:
            found = f" (found {', '.join(present)})" if present else ""
            problems.append(Problem(
                field=field,
                message=f"{model}: weight file(s) missing: {', '.join(missing)}{found}; torchtune loads exactly these",
                path=str(folder),
            ))
            ok = False
    elif not present:
        problems.append(Problem(
            field=field, message=f"{model}: no weights ({', '.join(WEIGHT_PATTERNS)})", path=str(folder)
        ))
        ok = False
    if spec is not None:
        ok = _check_tokenizer_files(model, field, folder, list(spec.tokenizer_files.values()), problems) and ok
        ok = _check_dimensions(model, field, folder, spec, problems) and ok
    return ModelInfo(name=model, path=folder, size_bytes=_folder_size(folder)) if ok else None


def _check_dimensions(model: str, field: str, folder: Path, spec: ModelSpec, problems: list[Problem]) -> bool:
    """config.json's hidden size and layer count against the registry: the folder holds the model it is named for."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # a missing config.json is its own problem; an unreadable one torchtune reports
    if not isinstance(config, dict):
        return True
    found = (config.get("hidden_size"), config.get("num_hidden_layers"))
    if None in found or found == (spec.hidden_size, spec.num_layers):
        return True
    same_shape = [m for m, s in REGISTRY.items() if (s.hidden_size, s.num_layers) == found and s.family == spec.family]
    looks_like = f" (the shape of {', '.join(same_shape[:2])})" if same_shape else ""
    problems.append(Problem(
        field=field,
        message=f"{model}: config.json has hidden_size {found[0]} and {found[1]} layers{looks_like}, but {model} has "
        f"{spec.hidden_size} and {spec.num_layers}: the folder holds another model",
        path=str(folder / "config.json"),
    ))
    return False


def check_lora_ranks(runs: list[Run]) -> list[Problem]:
    """A LoRA rank above the model's hidden size adapts nothing a smaller rank could not (and wastes memory)."""
    problems = []
    for run in runs:
        spec = lookup(run.model)
        if run.is_control or spec is None or run.params.lora_rank <= spec.hidden_size:
            continue
        field = "factors.lora_rank" if "lora_rank" in run.factors else "training.lora_rank"
        problems.append(Problem(
            field=field,
            message=f"run {run.name}: lora_rank {run.params.lora_rank} is above {run.model}'s hidden size "
            f"{spec.hidden_size}; the rank of a LoRA update cannot exceed the layer's width",
        ))
    return problems


def _check_tokenizer_files(
    model: str, field: str, folder: Path, torchtune_files: list[str], problems: list[Problem]
) -> bool:
    """The tokenizer files torchtune's config names and those inspect's hf/ provider loads."""
    missing_tt = [f for f in torchtune_files if not (folder / f).is_file()]
    if missing_tt:
        hint = (" (a download without original/ lacks it: add `--include 'original/tokenizer.model'`)"
                if any(f.startswith("original/") for f in missing_tt) else "")
        problems.append(Problem(
            field=field, message=f"{model}: tokenizer file(s) missing: {', '.join(missing_tt)}; "
            f"torchtune's tokenizer reads them{hint}", path=str(folder),
        ))
    missing_hf = [f for f in HF_TOKENIZER_FILES if not (folder / f).is_file()]
    if missing_hf:
        problems.append(Problem(
            field=field, message=f"{model}: tokenizer file(s) missing: {', '.join(missing_hf)}; "
            "inspect's hf/ provider loads them for evaluation", path=str(folder),
        ))
    return not (missing_tt or missing_hf)


def _dataset_fields(design: ExperimentDesign) -> dict[Path, str]:
    """Resolved dataset path -> the design field that names it."""
    fields: dict[Path, str] = {}
    levels: Any = design.factors.get("dataset")
    if isinstance(levels, dict):
        for label, value in levels.items():
            fields.setdefault(Path(str(value)), f"factors.dataset.{label}")
    elif isinstance(levels, list):
        for i, value in enumerate(levels):
            fields.setdefault(Path(str(value)), f"factors.dataset[{i}]")
    fields.setdefault(Path(design.dataset.path), "dataset.path")
    return fields


def _check_split(records: Any, split: str, spec: DatasetSpec, field: str, path: str, problems: list[Problem]) -> int:
    if not isinstance(records, list):
        problems.append(Problem(
            field=field,
            message=f"split {split!r} must be a JSON array of records, not {type(records).__name__}",
            path=path,
        ))
        return 0
    if not records:
        problems.append(Problem(field=field, message=f"split {split!r} is empty", path=path))
        return 0
    wanted = (spec.input_field, spec.output_field)
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict) or any(k not in r for k in wanted)]
    if bad:
        first = records[bad[0]]
        lacks = [k for k in wanted if k not in first] if isinstance(first, dict) else []
        what = (
            f"has no {' or '.join(repr(k) for k in lacks)} field" if lacks
            else f"is a {type(first).__name__}, not an object"
        )
        problems.append(Problem(
            field=field,
            message=f"split {split!r} record {bad[0]} {what} ({len(bad)} of {len(records)} records are incomplete; "
            f"each needs {spec.input_field!r} and {spec.output_field!r})",
            path=path,
        ))
    return len(records)


def _read_dataset(path: Path, field: str, problems: list[Problem]) -> tuple[bytes, Any] | None:
    """The file's bytes and its parsed JSON, or None with the problem recorded."""
    where = str(path)
    if not path.is_file():
        what = "is a folder, not a JSON file" if path.is_dir() else "dataset file not found"
        problems.append(Problem(field=field, message=what, path=where))
        return None
    try:
        raw = path.read_bytes()
    except OSError as error:
        problems.append(Problem(field=field, message=f"cannot be read: {error.strerror or error}", path=where))
        return None
    try:
        return raw, json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        problems.append(Problem(
            field=field, message=f"is not UTF-8 text: byte {error.start} cannot be decoded", path=where
        ))
    except json.JSONDecodeError as error:
        problems.append(Problem(
            field=field,
            message=f"is not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}",
            path=where,
        ))
    return None


def _check_dataset(
    spec: DatasetSpec, field: str, needs_validation: str | None, problems: list[Problem]
) -> DatasetInfo | None:
    """The dataset's size, hash and split counts, or None with every problem recorded."""
    path = Path(spec.path)
    where = str(path)
    read = _read_dataset(path, field, problems)
    if read is None:
        return None
    raw, data = read
    if not isinstance(data, dict):
        problems.append(Problem(
            field=field,
            message=f"must be one JSON object with {spec.train_split!r}, {spec.validation_split!r} and "
            f"{spec.test_split!r} arrays, not a {type(data).__name__}",
            path=where,
        ))
        return None
    before = len(problems)
    counts: dict[str, int] = {}
    for role, split, why in (
        ("train", spec.train_split, "fine-tuning trains on it"),
        ("validation", spec.validation_split, needs_validation),
        ("test", spec.test_split, "evaluation uses it"),
    ):
        if split not in data:
            if why:
                present = ", ".join(repr(k) for k in data) or "none"
                problems.append(Problem(
                    field=field,
                    message=f"has no {split!r} split, needed because {why} (splits present: {present})",
                    path=where,
                ))
            counts[role] = 0
            continue
        if not why:
            # nothing validates: the split is only counted, not required to be well formed
            counts[role] = len(data[split]) if isinstance(data[split], list) else 0
            continue
        counts[role] = _check_split(data[split], split, spec, field, where, problems)
    if len(problems) > before:
        return None
    leaked = leaked_test_inputs(data.get(spec.train_split), data.get(spec.test_split), spec.input_field)
    return DatasetInfo(
        path=path, size_bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest(), splits=SplitCounts(**counts),
        test_in_train=len(leaked), test_in_train_examples=leaked[:LEAK_EXAMPLES],
    )


def normalise_text(value: Any) -> str:
    """The form inputs are compared in for leakage: case-folded, whitespace collapsed."""
    return " ".join(str(value).split()).casefold()


def leaked_test_inputs(train: Any, test: Any, input_field: str) -> list[str]:
    """Test inputs (as written) whose normalised text is also a train input, in test order."""
    if not isinstance(train, list) or not isinstance(test, list):
        return []
    seen = {normalise_text(r[input_field]) for r in train if isinstance(r, dict) and input_field in r}
    return [str(r[input_field]) for r in test if isinstance(r, dict) and normalise_text(r.get(input_field, "")) in seen]


def _writable_anchor(output_dir: Path) -> Path:
    """output_dir, or its nearest existing parent (where the run group folder will be made)."""
    anchor = output_dir
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    return anchor


def _check_output_dir(output_dir: Path, problems: list[Problem]) -> float | None:
    anchor = _writable_anchor(output_dir)
    if not anchor.is_dir():
        problems.append(Problem(
            field="paths.output_dir", message=f"{anchor} is a file, not a folder", path=str(output_dir)
        ))
        return None
    if not os.access(anchor, os.W_OK | os.X_OK):
        note = "" if anchor == output_dir else f" (it does not exist yet; its nearest existing parent is {anchor})"
        problems.append(Problem(
            field="paths.output_dir", message=f"{anchor} is not writable{note}", path=str(output_dir)
        ))
    return free_disk_gib(anchor)


def free_disk_gib(folder: Path) -> float | None:
    """Free space under `folder` in GiB (2 decimals); None when the file system cannot say."""
    try:
        return round(shutil.disk_usage(folder).free / GIB, 2)
    except OSError:
        return None


def _task_problems(task: EvalTask, field: str, runs: list[Run], eval_scripts: dict[str, Path]) -> list[Problem]:
    """An evaluation task's problems: its file or registered name, and whether it takes what fidelity needs."""
    if task.script is not None:
        script = Path(task.script)
        where, path = f"{field}.script", str(script)
        if not script.is_file():
            what = "is a folder, not an inspect-ai task file" if script.is_dir() else "evaluation script not found"
            return [Problem(field=where, message=f"{task.name}: {what}", path=path)]
        eval_scripts[task.name] = script
    else:
        where, path = f"{field}.inspect_task", None
    try:
        signature = task_signature(task)
    except TaskNotFound as error:
        return [Problem(field=where, message=f"{task.name}: {error}", path=path)]
    prompts = [(r.name, r.params.system_prompt) for r in runs if any(j.task == task.name for j in r.evaluations)]
    return [
        Problem(field=f"{field}.args", message=why, path=path) for why in contract_problems(task, signature, prompts)
    ]


def verify_resources(design: ExperimentDesign, runs: list[Run]) -> VerifiedResources:
    """Check models, datasets, evaluation files and the output folder; report every problem at once."""
    paths = _paths(design)
    problems: list[Problem] = []

    models: list[ModelInfo] = []
    models_dir = Path(paths.models_dir)
    if not models_dir.is_dir():
        problems.append(Problem(field="paths.models_dir", message="models folder not found", path=str(models_dir)))
    else:
        for i, model in enumerate(design.models):
            info = _check_model(model, f"models[{i}]", models_dir / model, problems)
            if info is not None:
                models.append(info)

    needs_validation: str | None = None
    if design.evaluation.epochs == "best":
        needs_validation = "evaluation.epochs is 'best'"
    elif design.training.validation or any(r.params.validation for r in runs):
        needs_validation = "training.validation is true"
    fields = _dataset_fields(design)
    specs: dict[Path, DatasetSpec] = {}
    for run in runs or []:
        specs.setdefault(Path(run.params.dataset.path), run.params.dataset)
    if not specs:
        specs[Path(design.dataset.path)] = design.dataset
    datasets: list[DatasetInfo] = []
    for path, spec in specs.items():
        dataset = _check_dataset(spec, fields.get(path, "dataset.path"), needs_validation, problems)
        if dataset is not None:
            datasets.append(dataset)

    eval_scripts: dict[str, Path] = {}
    eval_datasets: dict[str, Path] = {}
    for i, task in enumerate(design.evaluation.tasks):
        problems += _task_problems(task, f"evaluation.tasks[{i}]", runs or [], eval_scripts)
        if task.dataset is not None:
            data = Path(task.dataset)
            if data.is_file():
                eval_datasets[task.name] = data
            else:
                what = "is a folder, not a data file" if data.is_dir() else "evaluation dataset not found"
                problems.append(Problem(
                    field=f"evaluation.tasks[{i}].dataset", message=f"{task.name}: {what}", path=str(data)
                ))

    problems += check_lora_ranks(runs or [])
    free = _check_output_dir(Path(paths.output_dir), problems)
    if problems:
        raise DesignError(problems, heading=HEADING)
    return VerifiedResources(
        models=models, datasets=datasets, eval_scripts=eval_scripts, eval_datasets=eval_datasets, free_disk_gib=free
    )


def check_disk(resources: VerifiedResources, needed_gib: float, output_dir: Path | str | None = None) -> list[Problem]:
    """A problem (field `paths.output_dir`) when the estimate needs more than is free there."""
    free = resources.free_disk_gib
    if free is None or needed_gib <= free:
        return []
    return [Problem(
        field="paths.output_dir",
        message=f"the plan needs about {format_gib(needed_gib)} but only {format_gib(free)} is free there "
        "(free space, save adapter weights only, or evaluate fewer epochs)",
        path=str(output_dir) if output_dir is not None else None,
    )]

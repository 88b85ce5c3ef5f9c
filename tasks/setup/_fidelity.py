"""Before any job: evaluation prompts are token for token what training trained on.

Reads: the rendered files of a run group (each fine-tune's `finetune.yaml`, each evaluation's
`task_args.yaml` and `model_args.yaml`), the dataset's test split, the evaluation task (through
inspect's loader) and each model folder's tokenizer files. Writes: nothing.

For each distinct (model, system prompt, evaluation task), the first few test rows are tokenized
both ways: by torchtune from the run's own config (`tasks/training/_prompt_tokens.py`) and by
inspect's `hf/` provider exactly as the evaluation job will call it
(`tasks/evaluation/_prompt_tokens.py`). The evaluation's ids must be the training ids up to the
answer, and the rest of the training ids must be the answer. Otherwise setup stops with the
first differing tokens, decoded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from tasks.core._errors import SweepflowError
from tasks.evaluation._prompt_tokens import decode_each, evaluation_prompt_ids, load_task_prompts
from tasks.model._design import EvalTask
from tasks.model._layout import EVALUATIONS_DIR, FINETUNE_CONFIG, MODEL_ARGS, TASK_ARGS
from tasks.model._plan import Plan, Run
from tasks.training._prompt_tokens import TrainingTokenizer, training_tokenizer

SAMPLES = 3
_WINDOW_BEFORE, _WINDOW_AFTER = 3, 8
# after the answer, training has only end tokens (<|eot_id|><|end_of_text|>, <|im_end|>, ...)
_END_TOKENS = re.compile(r"(\s*<\|[^|<>]+\|>)*\s*")


class FidelityError(SweepflowError):
    """An evaluation would feed the model other tokens than training did."""


class FidelityCheck(BaseModel):
    """One checked (model, system prompt, task): which run stood for it and what was compared."""

    model: str
    run: str
    task: str
    samples: int
    prompt_tokens: int  # evaluation prompt length of the first sample
    note: str | None = None


def first_difference(training: list[int], evaluation: list[int]) -> int | None:
    """Index of the first evaluation id that is not the training id there; None when a prefix."""
    for i, token in enumerate(evaluation):
        if i >= len(training) or training[i] != token:
            return i
    return None


def _shown(model_dir: Path, ids: list[int], at: int) -> str:
    start = max(0, at - _WINDOW_BEFORE)
    pieces = decode_each(model_dir, ids[start:at + _WINDOW_AFTER])
    text = " ".join(repr(p) for p in pieces)
    return f"{'... ' if start else ''}{text}{' ...' if at + _WINDOW_AFTER < len(ids) else ''}"


def _mismatch(where: str, model_dir: Path, training: list[int], evaluation: list[int], at: int) -> FidelityError:
    return FidelityError(
        f"{where}: evaluation would not see the prompt training saw; first difference at token {at}:\n"
        f"    training:   {_shown(model_dir, training, at)}\n"
        f"    evaluation: {_shown(model_dir, evaluation, at)}"
    )


def compare_sample(
    where: str, model_dir: Path, trainer: TrainingTokenizer, training: list[int], evaluation: list[int], answer: str
) -> None:
    """Raise FidelityError unless `evaluation` is `training` up to the answer and the rest is `answer`."""
    at = first_difference(training, evaluation)
    if at is not None:
        raise _mismatch(where, model_dir, training, evaluation, at)
    rest = trainer.decode(training[len(evaluation):])
    after = rest.strip().removeprefix(answer.strip())
    if after == rest.strip() or not _END_TOKENS.fullmatch(after):
        raise FidelityError(
            f"{where}: the evaluation prompt is a part of the training prompt only; training continues with "
            f"{rest[:80]!r} where the answer {answer.strip()[:80]!r} should start (token {len(evaluation)}: "
            f"{_shown(model_dir, training, len(evaluation))})"
        )


def _test_rows(run: Run, count: int) -> list[dict[str, Any]]:
    dataset = run.params.dataset
    data = json.loads(Path(dataset.path).read_text(encoding="utf-8"))
    rows = data.get(dataset.test_split) if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise FidelityError(f"{dataset.path}: no rows in the test split {dataset.test_split!r}")
    return [dict(r) for r in rows[:count]]


def _rows_from_prompts(run: Run, messages: list[list[Any]], targets: list[str]) -> list[dict[str, Any]]:
    """Training-shaped rows of a task that reads its own data: its user text and target."""
    fields = run.params.dataset
    return [
        {fields.input_field: chat[-1].text, fields.output_field: target}
        for chat, target in zip(messages, targets, strict=True)
    ]


def _load(files: dict[str, Any], rel: str) -> Any:
    return yaml.safe_load(files[rel].content)


def check_case(files: dict[str, Any], run: Run, trained: Run, task: EvalTask, count: int) -> FidelityCheck:
    """Compare training and evaluation tokens of `run` on `task`.

    `trained` gives the torchtune config: the run itself, or for a base-model control a
    fine-tune of the same model (the control's own system prompt is used).
    """
    where = f"run {run.name}, task {task.name}, model {run.model}"
    try:
        return _check_case(where, files, run, trained, task, count)
    except FidelityError:
        raise
    except SweepflowError as error:  # a tokenizer, task or data file that cannot be read
        raise FidelityError(f"{where}: {error}") from None


def _check_case(where: str, files: dict[str, Any], run: Run, trained: Run, task: EvalTask, count: int) -> FidelityCheck:
    from tasks.evaluation._inspect_tasks import eval_task_reference, task_signature
    from tasks.evaluation._task_contract import own_data

    config = f"{trained.name}/{FINETUNE_CONFIG}"
    trainer = training_tokenizer(files[config].content, config)
    evals = f"{run.name}/{EVALUATIONS_DIR}"
    args, model_args = _load(files, f"{evals}/{task.name}/{TASK_ARGS}"), _load(files, f"{evals}/{MODEL_ARGS}")
    prompts = load_task_prompts(eval_task_reference(task), args, count)
    if not prompts.messages:
        raise FidelityError(f"{where}: the task has no samples to check")
    # a task with its own data (or another file) is compared on its own samples' text and target
    from_prompts = task.dataset is not None or own_data(task, task_signature(task))
    rows = _rows_from_prompts(run, prompts.messages, prompts.targets) if from_prompts else _test_rows(run, count)
    model_dir = Path(run.model_dir)
    first = 0
    for k, (row, chat) in enumerate(zip(rows, prompts.messages, strict=False), start=1):  # the shorter decides
        training = trainer.tokens(row, run.params.system_prompt)
        evaluation = evaluation_prompt_ids(model_dir, model_args, chat)
        first = first or len(evaluation)
        answer = str(row[run.params.dataset.output_field])
        compare_sample(f"{where}, sample {k}", model_dir, trainer, training, evaluation, answer)
    return FidelityCheck(
        model=run.model, run=run.name, task=task.name, samples=min(len(rows), len(prompts.messages)),
        prompt_tokens=first, note=prompts.solver_note,
    )


def check_fidelity(plan: Plan, files: dict[str, Any], samples: int = SAMPLES) -> list[FidelityCheck]:
    """Every distinct (model, system prompt, task, dataset) of the plan checked; raises FidelityError on a mismatch."""
    trained_by_model: dict[str, Run] = {}
    for run in plan.finetune_runs:
        trained_by_model.setdefault(run.model, run)
    tasks = {t.name: t for t in plan.design.evaluation.tasks}
    seen: set[tuple[str, str, str, str]] = set()
    checks = []
    for run in plan.runs:
        trained = trained_by_model.get(run.model) if run.is_control else run
        for task_name in dict.fromkeys(job.task for job in run.evaluations):
            key = (run.model, run.params.system_prompt, task_name, str(run.params.dataset.path))
            if trained is None or key in seen:
                continue
            seen.add(key)
            checks.append(check_case(files, run, trained, tasks[task_name], samples))
    return checks

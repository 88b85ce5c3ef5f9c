"""Per-sample scores of a run group's evaluations: the tidy table behind every comparison.

Reads: the `.eval` log each evaluation's accuracy was taken from (`EvalResult.log`, chosen by
`tasks.results._collect`), every sample, with inspect-ai's own reader (`read_eval_log_samples`);
the plan, for each run's model, factor levels, replicate and seed.
Writes nothing itself: `samples_csv` is the text of `results/samples.csv` (written by
`tasks.results._analysis.write_tables`): one row per run x task x epoch x sample
(x inspect epoch, when a task repeats its samples), for the researcher's own analysis.

An evaluation whose samples cannot all be scored as finite numbers (no scorer, a sample that errored,
fewer samples than the log's total, a score that is not a number or C/I/P/N, a NaN or infinite
score, a sample id scored twice in one inspect epoch, items scored a different number of inspect
epochs) keeps its rows that have a score but is marked `unusable` with the reason: no comparison is
made from it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tasks.evaluation._eval_logs import epoch_label
from tasks.model._plan import EpochRef, Plan, Run
from tasks.results._collect import EvalResult

LETTER_SCORES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}  # inspect's CORRECT, INCORRECT, PARTIAL, NOANSWER
FIXED_COLUMNS = ["run", "kind", "model"]
TAIL_COLUMNS = ["replicate", "seed", "task", "epoch", "sample_id", "sample_epoch", "target", "answer", "score"]


class ScoredEvaluation(BaseModel):
    """One evaluation's per-sample scores (sample id -> score, inspect epochs averaged)."""

    run: str
    cell: str  # the design cell the run replicates (controls: the run)
    model: str
    kind: str
    replicate: int
    task: str
    epoch: EpochRef = None
    scores: dict[str, float] = Field(default_factory=dict)
    rows: list[dict[str, Any]] = Field(default_factory=list)  # samples.csv rows (factor columns filled later)
    unusable: str | None = None  # why no comparison may use these scores

    @property
    def epoch_text(self) -> str:
        """`0`, `1`, `best`, or `base`."""
        return epoch_label(self.epoch)


def score_value(value: Any) -> float | None:
    """A sample score as a finite number: numbers and booleans as they are, inspect's letters as 1 / 0 / 0.5.

    None for anything else, NaN and infinities included: a mean over them is no accuracy.
    """
    number: float | None = None
    if isinstance(value, bool | int | float):
        number = float(value)
    elif isinstance(value, str):
        if value in LETTER_SCORES:
            return LETTER_SCORES[value]
        try:
            number = float(value)
        except ValueError:
            return None
    return number if number is not None and math.isfinite(number) else None


def _problem(sample: Any, score: Any) -> str:
    """Why one sample has no usable score."""
    if score is None:
        why = "no score"
    elif _is_float(score.value):
        why = f"score {score.value!r} is not a finite number (NaN or infinite)"
    else:
        why = f"score {score.value!r} is not a number or C/I/P/N"
    error = getattr(sample, "error", None)
    return f"sample {sample.id}: {why}" + (f" ({error.message})" if error else "")


def _is_float(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, int | float | str)


def _epoch_problem(epochs: dict[str, list[int]]) -> str | None:
    """Why the items' inspect epochs cannot be averaged alike (a repeated sample, unequal repeats), or None."""
    for item, seen in epochs.items():
        if len(seen) != len(set(seen)):
            return f"sample {item} is scored more than once in inspect epoch {max(seen, key=seen.count)}"
    counts = {len(seen) for seen in epochs.values()}
    if len(counts) > 1:
        fewest = min(epochs, key=lambda item: len(epochs[item]))
        return (f"the samples were scored a different number of inspect epochs ({min(counts)} to {max(counts)}, "
                f"e.g. sample {fewest} {len(epochs[fewest])} times): their averages are not alike")
    return None


def _scorer_name(result: EvalResult) -> str | None:
    return result.metric.split("/", 1)[0] if result.metric else None


def _read_samples(path: Path) -> Iterable[Any]:
    from inspect_ai.log import read_eval_log_samples  # slow import: only when there are logs

    return read_eval_log_samples(str(path), all_samples_required=False)


def scored_evaluation(run: Run, result: EvalResult) -> ScoredEvaluation:
    """The per-sample scores of one evaluation result (`unusable` says why none may be compared)."""
    scored = ScoredEvaluation(run=run.name, cell=run.cell_name, model=run.model, kind=run.kind,
                              replicate=run.replicate, task=result.task, epoch=result.epoch)
    if result.log is None or result.accuracy is None:
        scored.unusable = result.reason or "no successful .eval log"
        return scored
    scorer = _scorer_name(result)
    per_item: dict[str, list[float]] = {}
    epochs: dict[str, list[int]] = {}
    problems: list[str] = []
    try:
        samples = list(_read_samples(result.log))
    except Exception as error:  # inspect raises many kinds on a file it cannot read
        scored.unusable = f"its samples cannot be read from {result.log.name} ({type(error).__name__})"
        return scored
    for sample in samples:
        score = (sample.scores or {}).get(scorer) if scorer else None
        value = score_value(score.value) if score is not None else None
        epochs.setdefault(str(sample.id), []).append(int(sample.epoch or 1))
        if value is None:
            problems.append(_problem(sample, score))
        else:
            per_item.setdefault(str(sample.id), []).append(value)
        scored.rows.append({
            "sample_id": sample.id, "sample_epoch": sample.epoch, "target": _text(sample.target),
            "answer": _answer(score, sample), "score": "" if value is None else value,
        })
    scored.scores = {item: sum(values) / len(values) for item, values in per_item.items()}
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        scored.unusable = f"{problems[0]}{more}"
    elif (why := _epoch_problem(epochs)) is not None:
        scored.unusable = why
    elif result.total_samples and len(samples) < result.total_samples:
        scored.unusable = f"the log holds {len(samples)} of {result.total_samples} samples"
    elif not samples:
        scored.unusable = "the log holds no samples"
    return scored


def _text(target: Any) -> str:
    return " | ".join(map(str, target)) if isinstance(target, list) else str(target)


def _answer(score: Any, sample: Any) -> str:
    if score is not None and score.answer is not None:
        return str(score.answer)
    output = getattr(sample, "output", None)
    return str(getattr(output, "completion", "") or "")


def scored_evaluations(plan: Plan, results: list[EvalResult]) -> list[ScoredEvaluation]:
    """Per-sample scores of every evaluation result of the plan (unusable ones say why)."""
    runs = {run.name: run for run in plan.runs}
    return [scored_evaluation(runs[r.run], r) for r in results if r.run in runs]


def csv_text(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    """A CSV file's text: a header of `columns`, then one line per row (every results/ table is written so)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def samples_csv(plan: Plan, evaluations: list[ScoredEvaluation]) -> str:
    """results/samples.csv's text: run, kind, model, every factor, replicate, seed, task, epoch, sample..."""
    factors = list(dict.fromkeys(f for run in plan.finetune_runs for f in run.factors))
    runs = {run.name: run for run in plan.runs}

    def rows() -> Iterable[dict[str, Any]]:
        for scored in evaluations:
            run = runs[scored.run]
            base = {"run": run.name, "kind": run.kind, "model": run.model,
                    **{f: run.factors.get(f, "base" if run.is_control else "") for f in factors},
                    "replicate": "" if run.is_control else run.replicate,
                    "seed": "" if run.is_control else run.params.seed,
                    "task": scored.task, "epoch": scored.epoch_text}
            yield from ({**base, **row} for row in scored.rows)

    return csv_text(FIXED_COLUMNS + factors + TAIL_COLUMNS, rows())


__all__ = ["ScoredEvaluation", "csv_text", "samples_csv", "score_value", "scored_evaluation", "scored_evaluations"]

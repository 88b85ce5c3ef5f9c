"""Per-sample scores read from REAL inspect-ai `.eval` logs (inspect_ai.eval with the mockllm provider).

A log with numbers gives one score per sample; a log whose scorer gives something that is not a
number (or no scorer at all) is unusable, with the reason, and never becomes a number.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.model.plan import Run
from tasks.results.collect import EvalResult
from tasks.results.samples import scored_evaluation
from tests.support.seed_plan import build_plan

TARGETS = ["A", "B", "C", "D"]


def _log(folder: Path, answers: list[str], scorer: str) -> Path:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import Score, Target, match, mean, scorer as make_scorer
    from inspect_ai.solver import TaskState, generate

    @make_scorer(metrics=[mean()])
    def verdict():  # a scorer whose value is a word, not a number
        async def score(state: TaskState, target: Target) -> Score:
            return Score(value="maybe", answer=state.output.completion)
        return score

    outputs = [ModelOutput.from_content("mockllm/model", a) for a in answers]
    for output in outputs:
        output.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)
    chosen = {"match": match(), "verdict": verdict(), "none": None}[scorer]
    task = Task(dataset=[Sample(input=f"w{i}", target=t, id=f"item{i}") for i, t in enumerate(TARGETS)],
                solver=generate(), scorer=chosen, name="cap")
    [log] = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=outputs), display="none",
                         log_dir=str(folder))
    return Path(log.location)


def _result(run: Run, log: Path, accuracy: float | None, metric: str | None) -> EvalResult:
    return EvalResult(run=run.name, model=run.model, kind=run.kind, task="cap", epoch=1, key="cap_epoch_1",
                      state="completed", accuracy=accuracy, metric=metric, log=log, total_samples=4,
                      reason=None if accuracy is not None else "the log has no scores")


@pytest.fixture(scope="module")
def run() -> Run:
    return build_plan().finetune_runs[0]


def test_scores_per_sample_from_a_real_log(tmp_path: Path, run: Run) -> None:
    log = _log(tmp_path, ["A", "x", "C", "y"], "match")
    scored = scored_evaluation(run, _result(run, log, 0.5, "match/accuracy"))
    assert scored.unusable is None
    assert scored.scores == {"item0": 1.0, "item1": 0.0, "item2": 1.0, "item3": 0.0}
    assert [(r["sample_id"], r["target"], r["answer"], r["score"]) for r in scored.rows] == [
        ("item0", "A", "A", 1.0), ("item1", "B", "x", 0.0), ("item2", "C", "C", 1.0), ("item3", "D", "y", 0.0)]


def test_a_score_that_is_not_a_number_makes_the_evaluation_unusable(tmp_path: Path, run: Run) -> None:
    log = _log(tmp_path, TARGETS, "verdict")
    scored = scored_evaluation(run, _result(run, log, 0.0, "verdict/mean"))
    assert scored.scores == {}
    assert scored.unusable is not None and "'maybe' is not a number" in scored.unusable and "3 more" in scored.unusable


def test_a_log_without_a_scorer_is_unusable_with_the_reason(tmp_path: Path, run: Run) -> None:
    log = _log(tmp_path, TARGETS, "none")
    scored = scored_evaluation(run, _result(run, log, None, None))
    assert scored.scores == {} and scored.unusable == "the log has no scores"

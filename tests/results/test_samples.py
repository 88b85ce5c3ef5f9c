"""Per-sample scores read from REAL inspect-ai `.eval` logs (inspect_ai.eval with the mockllm provider).

A log with numbers gives one score per sample; a log whose scorer gives something that is not a
number (or no scorer at all) is unusable, with the reason, and never becomes a number.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.model._plan import Run
from tasks.results._collect import EvalResult
from tasks.results._samples import score_value, scored_evaluation
from tests.support.seed_plan import build_plan

TARGETS = ["A", "B", "C", "D"]


def _log(folder: Path, answers: list[str], scorer: str) -> Path:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import Score, Target, match, mean
    from inspect_ai.scorer import scorer as make_scorer
    from inspect_ai.solver import TaskState, generate

    @make_scorer(metrics=[mean()])
    def verdict():  # a scorer whose value is a word, not a number
        async def score(state: TaskState, target: Target) -> Score:
            return Score(value="maybe", answer=state.output.completion)
        return score

    @make_scorer(metrics=[mean()])
    def judge():  # a scorer (e.g. a model judge) that gives NaN or inf for the answers it cannot read
        async def score(state: TaskState, target: Target) -> Score:
            text = state.output.completion
            return Score(value={"x": float("nan"), "y": float("inf")}.get(text, float(text == target.text)),
                         answer=text)
        return score

    outputs = [ModelOutput.from_content("mockllm/model", a) for a in answers]
    for output in outputs:
        output.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)
    chosen = {"match": match(), "verdict": verdict(), "judge": judge(), "none": None}[scorer]
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


def test_a_nan_or_infinite_score_makes_the_evaluation_unusable(tmp_path: Path, run: Run) -> None:
    log = _log(tmp_path, ["A", "x", "C", "y"], "judge")  # item1 scores NaN, item3 inf
    scored = scored_evaluation(run, _result(run, log, 0.5, "judge/mean"))
    # on main NaN and inf were numbers: the comparison's estimate was NaN and its McNemar p 0.0
    assert scored.unusable is not None and "sample item1: score nan is not a finite number" in scored.unusable
    assert "and 1 more" in scored.unusable and scored.scores == {"item0": 1.0, "item2": 1.0}
    assert [r["score"] for r in scored.rows] == [1.0, "", 1.0, ""]
    assert [score_value(v) for v in (float("nan"), float("inf"), "nan", "-inf")] == [None] * 4


def _samples(pairs: list[tuple[str, int]]) -> list[object]:
    from inspect_ai.log import EvalSample
    from inspect_ai.scorer import Score

    return [EvalSample(id=item, epoch=epoch, input="w", target="A", scores={"match": Score(value="C")})
            for item, epoch in pairs]


@pytest.mark.parametrize(("pairs", "why"), [
    ([("item0", 1), ("item0", 2), ("item1", 1)], "scored a different number of inspect epochs (1 to 2"),
    ([("item0", 1), ("item0", 1), ("item1", 1)], "sample item0 is scored more than once in inspect epoch 1"),
])
def test_samples_scored_unevenly_across_inspect_epochs_are_not_averaged(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run: Run, pairs, why: str) -> None:
    monkeypatch.setattr("tasks.results._samples._read_samples", lambda path: _samples(pairs))
    result = _result(run, tmp_path / "x.eval", 1.0, "match/accuracy")
    result.total_samples = None
    scored = scored_evaluation(run, result)
    assert scored.unusable is not None and why in scored.unusable
    even = _samples([("item0", 1), ("item0", 2), ("item1", 1), ("item1", 2)])
    monkeypatch.setattr("tasks.results._samples._read_samples", lambda path: even)
    assert scored_evaluation(run, result).unusable is None


def test_inspect_s_accuracy_over_incomplete_scores_is_withheld_from_the_results(tmp_path: Path, run: Run) -> None:
    from inspect_ai.log import read_eval_log

    from tasks.results._analysis import withhold_incomplete
    from tasks.results._collect import _scores, add_deltas

    log = _log(tmp_path, ["A", "x", "C", "D"], "judge")  # item1 scores NaN
    accuracy, _, metric, _ = _scores(read_eval_log(str(log), header_only=True))
    assert metric == "judge/mean" and accuracy == 1.0  # inspect's mean skips the NaN: 3 of 3, not of 4
    tuned = _result(run, log, accuracy, metric)
    base = tuned.model_copy(update={"run": "base", "kind": "control", "epoch": None, "accuracy": 0.5})
    results = [tuned, base]
    add_deltas(results)
    assert tuned.delta_vs_base == 0.5
    withhold_incomplete(results, [scored_evaluation(run, tuned)])
    assert tuned.accuracy is None and tuned.delta_vs_base is None and base.accuracy == 0.5
    assert "sample item1: score nan is not a finite number" in tuned.reason and "judge/mean 1.000" in tuned.reason

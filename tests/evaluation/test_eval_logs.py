"""What an inspect log says about its own run (tasks/evaluation/_eval_logs.py), on real inspect logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.evaluation import evaluated_samples, read_log_headers


def _real_log(folder: Path, samples: int, epochs: int) -> Path:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    outputs = [ModelOutput.from_content("mockllm/model", "A") for _ in range(samples * epochs)]
    for output in outputs:
        output.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)  # no tokenizer download
    task = Task(dataset=[Sample(input=f"w{i}", target="A") for i in range(samples)], solver=generate(),
                scorer=match(), name="cap", epochs=epochs)
    [log] = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=outputs), display="none",
                         log_dir=str(folder))
    assert log.status == "success"
    return Path(log.location)


@pytest.mark.parametrize("epochs", [1, 3])
def test_evaluated_samples_counts_dataset_samples_not_epochs(tmp_path: Path, epochs: int) -> None:
    """inspect's results count each sample once per epoch; the plan's counts are dataset samples."""
    _real_log(tmp_path, samples=4, epochs=epochs)
    [entry] = read_log_headers(tmp_path)
    assert entry.header.results.completed_samples == 4 * epochs  # what inspect itself records
    assert evaluated_samples(entry) == 4

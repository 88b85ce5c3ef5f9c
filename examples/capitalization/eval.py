"""inspect-ai evaluation of the capitalization task: exact match of the capitalized word.

Reads: the dataset JSON written by `examples/capitalization/make_dataset.py` (one object with
`train` / `validation` / `test` arrays of {"input", "output"}); only the chosen split (test by
default) is used. Writes: nothing itself (inspect writes its .eval log).

Which dataset file, first match wins:
  -T dataset=PATH                 (task argument)
  CAPITALIZATION_DATASET=PATH     (environment variable)
  demo/data/words_5L_80P_5000.json in this repository (the file `examples/tiny_demo` makes)

    inspect eval examples/capitalization/eval.py --model hf/tiny -M model_path=DIR \\
        -M device=cpu -M do_sample=false --max-tokens 12 \\
        -T dataset=words_5L_80P_5000.json -T system_prompt="" [--limit 50]

sweepflow passes parameters named `dataset`, `system_prompt`, `split`, `input_field` and
`output_field` by name from the design through task_args.yaml (a task with other names maps them
with the design's `args:`). The system prompt must be the one used in training; an
empty prompt adds no system message, as torchtune adds none when `new_system_prompt` is unset.
sweepflow's evaluation jobs also pass `--model-config model_args.yaml` (the chat format torchtune
trained on; see README "Fidelity"). Generation
is greedy (temperature 0); with the `hf/` provider also pass `-M do_sample=false`, since
transformers samples otherwise (and rejects temperature 0 when sampling).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, accuracy, scorer, stderr
from inspect_ai.solver import TaskState, generate

ENV_VAR = "CAPITALIZATION_DATASET"
DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "demo" / "data" / "words_5L_80P_5000.json"


def dataset_path(dataset: str | None = None) -> Path:
    """The dataset file to read: the task argument, else the env var, else the demo file."""
    chosen = dataset or os.environ.get(ENV_VAR) or str(DEFAULT_DATASET)
    return Path(chosen).expanduser().resolve()


def load_samples(
    path: Path, split: str = "test", system_prompt: str = "", input_field: str = "input", output_field: str = "output"
) -> list[Sample]:
    if not path.is_file():
        hint = " (make it with `python -m examples.tiny_demo.make_example demo`)" if path == DEFAULT_DATASET else ""
        raise FileNotFoundError(f"capitalization dataset not found: {path}{hint}; pass -T dataset=PATH or set {ENV_VAR}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or split not in data:
        have = ", ".join(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: no {split!r} split (has: {have})")
    samples = []
    for i, row in enumerate(data[split]):
        messages = [ChatMessageSystem(content=system_prompt)] if system_prompt else []
        messages.append(ChatMessageUser(content=str(row[input_field])))
        samples.append(Sample(id=i + 1, input=messages, target=str(row[output_field]), metadata={"word": row[input_field]}))
    return samples


@scorer(metrics=[accuracy(), stderr()])
def exact_match():
    """CORRECT when the completion equals the target after stripping surrounding whitespace (case matters)."""

    async def score(state: TaskState, target: Target) -> Score:
        answer = state.output.completion.strip()
        ok = any(answer == t.strip() for t in target.target)
        return Score(value=CORRECT if ok else INCORRECT, answer=answer)

    return score


@task
def capitalization(
    dataset: str | None = None,
    system_prompt: str = "",
    split: str = "test",
    input_field: str = "input",
    output_field: str = "output",
) -> Task:
    path = dataset_path(dataset)
    samples = load_samples(path, split, system_prompt, input_field, output_field)
    return Task(
        dataset=MemoryDataset(samples, name=path.stem, location=str(path)),
        solver=generate(),
        scorer=exact_match(),
        config=GenerateConfig(temperature=0.0),
        metadata={"dataset": str(path), "split": split, "system_prompt": system_prompt},
    )

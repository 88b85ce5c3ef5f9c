"""Training tokens == evaluation tokens, on the real Llama-3 tokenizer and on the demo model.

The Llama-3 folder (tests/support/llama3_real.py) holds Meta's real tokenizer and the
Llama-3.1/3.2-Instruct chat template with its date block. "Today's path" is what evaluations
did before model_args.yaml: the folder's own chat template and inspect's default tokenizer call
(special tokens on). The check must catch it there, and pass sweepflow's path, for an empty and
a non-empty system prompt; on the demo model both paths agree, and the check says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.setup_experiment import setup_experiment
from tasks.evaluation._chat_format import model_args
from tasks.evaluation._prompt_tokens import decode_each, evaluation_prompt_ids
from tasks.setup import FidelityError, check_rendered_fidelity, render_setup
from tasks.setup._fidelity import compare_sample
from tasks.training._prompt_tokens import TrainingTokenizer
from tests.support import fakesite
from tests.support.llama3_real import make_llama3_instruct_folder, tokenizer_model
from tests.support.setup_groups import planned
from tests.support.tiny_training import tiny_setup

PROMPTS = ["", "You capitalize words. Answer with the word only."]
ROW = {"input": "river", "output": "River"}


def _messages(system_prompt: str, text: str) -> list:
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser

    return ([ChatMessageSystem(content=system_prompt)] if system_prompt else []) + [ChatMessageUser(content=text)]


@pytest.fixture(scope="module")
def llama3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_llama3_instruct_folder(tmp_path_factory.mktemp("models") / "Llama-3.2-1B-Instruct")


@pytest.fixture(scope="module")
def llama3_trainer(llama3_dir: Path) -> TrainingTokenizer:
    from torchtune.models.llama3 import llama3_tokenizer

    return TrainingTokenizer(llama3_tokenizer(str(llama3_dir / "original" / "tokenizer.model")), {}, False)


@pytest.mark.parametrize("system_prompt", PROMPTS, ids=["no-system-prompt", "system-prompt"])
def test_real_llama3_evaluation_tokens_equal_training_tokens(
    llama3_dir: Path, llama3_trainer: TrainingTokenizer, system_prompt: str
) -> None:
    training = llama3_trainer.tokens(ROW, system_prompt)
    evaluation = evaluation_prompt_ids(llama3_dir, model_args("llama3", "cpu"), _messages(system_prompt, ROW["input"]))
    assert evaluation == training[:len(evaluation)]
    assert decode_each(llama3_dir, training[len(evaluation):]) == ["River", "<|eot_id|>", "<|end_of_text|>"]
    assert evaluation.count(128000) == 1  # one <|begin_of_text|>
    compare_sample("sample", llama3_dir, llama3_trainer, training, evaluation, ROW["output"])


@pytest.mark.parametrize("system_prompt", PROMPTS, ids=["no-system-prompt", "system-prompt"])
def test_real_llama3_old_path_is_caught(
    llama3_dir: Path, llama3_trainer: TrainingTokenizer, system_prompt: str
) -> None:
    training = llama3_trainer.tokens(ROW, system_prompt)
    old = evaluation_prompt_ids(llama3_dir, {}, _messages(system_prompt, ROW["input"]))  # folder template, BOS added
    shown = decode_each(llama3_dir, old)
    assert shown[:2] == ["<|begin_of_text|>", "<|begin_of_text|>"]  # two BOS, as the issue read the code
    assert "".join(shown).count("Cutting Knowledge Date: December 2023") == 1  # the date block
    with pytest.raises(FidelityError) as caught:
        compare_sample("run r, task t, sample 1", llama3_dir, llama3_trainer, training, old, ROW["output"])
    message = str(caught.value)
    assert "first difference at token 1" in message
    assert "training:   '<|begin_of_text|>' '<|start_header_id|>'" in message
    assert "evaluation: '<|begin_of_text|>' '<|begin_of_text|>'" in message


def test_prompt_without_the_assistant_header_is_caught(llama3_dir: Path, llama3_trainer: TrainingTokenizer) -> None:
    training = llama3_trainer.tokens(ROW, "")
    no_header = training[:training.index(128006, 2)]  # stops before <|start_header_id|>assistant
    with pytest.raises(FidelityError, match="part of the training prompt only"):
        compare_sample("sample", llama3_dir, llama3_trainer, training, no_header, ROW["output"])


def test_demo_model_both_paths_equal_training(tmp_path: Path) -> None:
    from tasks.training.tiny_llama import tiny_tokenizer

    model_dir, _ = tiny_setup(tmp_path)
    trainer = TrainingTokenizer(
        tiny_tokenizer(str(model_dir / "tokenizer.model"), str(model_dir / "tokenizer.json")), {}, False
    )
    for system_prompt in PROMPTS:
        training = trainer.tokens(ROW, system_prompt)
        for args in ({}, model_args("llama3", "cpu")):  # its own template was written to match torchtune
            evaluation = evaluation_prompt_ids(model_dir, args, _messages(system_prompt, ROW["input"]))
            compare_sample("demo", model_dir, trainer, training, evaluation, ROW["output"])


# --- the check as setup-experiment runs it --------------------------------------------------


def _group(root: Path, system_prompt: str, task_file: str = fakesite.TASK_FILE) -> Path:
    data = fakesite.design(root, name="fid", models=["Llama-3.2-1B-Instruct"], factors={"lora_rank": [4]},
                           training={"epochs": 1, "system_prompt": system_prompt})
    Path(data["evaluation"]["tasks"][0]["script"]).write_text(task_file)
    return planned(data, base=root)


@pytest.mark.parametrize("system_prompt", PROMPTS, ids=["no-system-prompt", "system-prompt"])
def test_setup_check_passes_on_real_llama3_tokenizer(tmp_path: Path, system_prompt: str) -> None:
    checks = check_rendered_fidelity(render_setup(_group(tmp_path, system_prompt)))
    # one (model, prompt, task): the base-model control reads the same tokenizer files and prompt
    assert [(c.run, c.task, c.samples) for c in checks] == [("Llama-3.2-1B-Instruct_rank4", "cap", 3)]
    assert all(c.prompt_tokens > 10 and c.note is None for c in checks)


def test_task_that_rewrites_the_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    rewriting = fakesite.TASK_FILE.replace(
        "    return capitalization(dataset, system_prompt, split, input_field, output_field)",
        "    task = capitalization(dataset, system_prompt, split, input_field, output_field)\n"
        "    for sample in task.dataset:\n"
        "        sample.input[-1].content = 'Capitalize: ' + sample.input[-1].content\n"
        "    return task",
    )
    group = _group(tmp_path, PROMPTS[1], rewriting)
    before = sorted(p.name for p in group.iterdir())
    state = setup_experiment(str(group), validate_configs=False, return_state=True)
    assert state.is_failed()
    message = state.message or ""
    assert "Fidelity check failed; nothing was written" in message
    assert "first difference at token" in message and "'Cap'" in message
    assert sorted(p.name for p in group.iterdir()) == before  # no run folder, no file


def test_task_that_drops_the_system_prompt_is_refused(tmp_path: Path) -> None:
    ignoring = fakesite.TASK_FILE.replace(
        "capitalization(dataset, system_prompt,", "capitalization(dataset, '',"
    )
    with pytest.raises(FidelityError, match="run Llama-3.2-1B-Instruct_rank4, task cap, model Llama-3.2-1B-Instruct"):
        check_rendered_fidelity(render_setup(_group(tmp_path, PROMPTS[1], ignoring)))


def test_model_folder_without_the_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    group = _group(tmp_path, "")
    (tmp_path / "models" / "Llama-3.2-1B-Instruct" / "original" / tokenizer_model().name).unlink()
    with pytest.raises(FidelityError) as caught:
        check_rendered_fidelity(render_setup(group))
    assert "finetune.yaml: torchtune cannot build its tokenizer" in str(caught.value)

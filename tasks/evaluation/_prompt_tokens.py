"""The token ids an evaluation feeds the model, computed by inspect-ai's own `hf/` provider code.

Reads: an inspect task file (loaded through inspect's loader with the arguments sweepflow passes,
so its samples are the ones the evaluation job will see) and a model folder's HF tokenizer
files. Writes: nothing. Loads no model weights: the provider's chat step (`hf_chat`) runs on a
bare provider object holding only the tokenizer and the model arguments.

What inspect does between a sample and the model, and what is reproduced here:
`Sample.input` (a string becomes one user message), the task's `GenerateConfig.system_message`,
the provider's collapsing of consecutive messages, `HuggingFaceAPI.hf_chat` (chat template), then
`tokenizer(chat, **tokenizer_call_args)`. Solvers other than `generate()` that rewrite messages
are not run; `TaskPrompts.solver_note` says when a task has one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core._errors import SweepflowError


@dataclass(frozen=True)
class TaskPrompts:
    """The first samples of an evaluation task, as inspect hands them to the model."""

    task_ref: str
    messages: list[list[Any]]  # per sample: inspect ChatMessage objects, before the chat template
    targets: list[str]
    solver_note: str | None  # set when the task's solver is more than generate()


def _solver_note(task: Any) -> str | None:
    from inspect_ai._util.registry import registry_info, registry_unqualified_name

    try:
        name = registry_unqualified_name(registry_info(task.solver).name)
    except (ValueError, AttributeError, KeyError):
        name = type(task.solver).__name__
    if name == "generate":
        return None
    return f"its solver ({name}) may change the messages after this check; only generate() is checked exactly"


def load_task_prompts(task_ref: str, task_args: dict[str, Any], count: int) -> TaskPrompts:
    """The first `count` samples of the task `task_ref` (`file.py@function`) created with `task_args`."""
    from inspect_ai._eval.loader import load_tasks
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser

    try:
        tasks = load_tasks([task_ref], task_args)
    except Exception as error:  # the task's own code: any error is a bad task, shown in one line
        why = f"{type(error).__name__}: {error}"
        raise SweepflowError(f"{task_ref}: inspect could not create the task: {why}") from None
    if len(tasks) != 1:
        raise SweepflowError(f"{task_ref}: expected one task, inspect found {len(tasks)}")
    task = tasks[0]
    system = task.config.system_message
    messages, targets = [], []
    for sample in list(task.dataset)[:count]:
        chat = [ChatMessageUser(content=sample.input)] if isinstance(sample.input, str) else list(sample.input)
        if system:
            chat = [ChatMessageSystem(content=system), *chat]
        messages.append(chat)
        target = sample.target
        targets.append(target if isinstance(target, str) else (target[0] if target else ""))
    return TaskPrompts(task_ref, messages, targets, _solver_note(task))


@functools.lru_cache(maxsize=8)
def hf_tokenizer(model_dir: Path) -> Any:
    """The model folder's tokenizer, loaded as inspect's `hf/` provider loads it (offline)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as error:
        raise SweepflowError(f"{model_dir}: its HF tokenizer files cannot be loaded: {error}") from None


def _bare_provider(tokenizer: Any, model_args: dict[str, Any]) -> Any:
    """An inspect `HuggingFaceAPI` with no model: only what its chat step reads."""
    from inspect_ai.model._providers.hf import HuggingFaceAPI

    api = object.__new__(HuggingFaceAPI)
    api.tokenizer = tokenizer
    api.chat_template = model_args.get("chat_template")
    api.use_chat_template = model_args.get("use_chat_template")
    api.enable_thinking = model_args.get("enable_thinking")
    return api


def evaluation_prompt_ids(model_dir: Path, model_args: dict[str, Any], messages: list[Any]) -> list[int]:
    """The input ids inspect's `hf/` provider gives the model for these messages."""
    from inspect_ai.model._model import collapse_consecutive_messages_for_api

    tokenizer = hf_tokenizer(Path(model_dir))
    api = _bare_provider(tokenizer, model_args)
    chat = api.hf_chat(collapse_consecutive_messages_for_api(list(messages), api), [])
    ids = tokenizer(chat, **(model_args.get("tokenizer_call_args") or {}))["input_ids"]
    return [int(i) for i in ids]


def decode_each(model_dir: Path, ids: list[int]) -> list[str]:
    """Each id decoded alone (special tokens shown), for messages that show where two prompts differ."""
    tokenizer = hf_tokenizer(Path(model_dir))
    return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]

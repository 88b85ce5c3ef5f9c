"""The model arguments of every evaluation: the chat format training used, one BOS, greedy decoding.

Reads: `templates/inspect/chat/<family>.jinja` (the chat template of a model family, written to
render exactly the token stream torchtune's tokenizer of that family trains on). Writes: nothing;
`tasks/setup/_files.py` writes the result to each evaluation folder's `model_args.yaml`, which the
job passes to `inspect eval --model-config`.

Why not the model folder's own chat template: the Llama-3.1/3.2-Instruct template adds a
"Cutting Knowledge Date / Today Date" system block torchtune never trained on (and the date
changes with the calendar), Qwen2.5's adds a default system prompt, and inspect's `hf/` provider
tokenizes the templated text with special tokens on, which gives a second `<|begin_of_text|>`.
The fidelity check of setup-experiment (`tasks/setup/_fidelity.py`) proves the result per run.
"""

from __future__ import annotations

from typing import Any

from tasks.core._errors import SweepflowError
from tasks.core._repo import TEMPLATES_DIR

CHAT_TEMPLATES_DIR = TEMPLATES_DIR / "inspect" / "chat"
# family (tasks.training._registry ModelSpec.family) -> chat template file
CHAT_TEMPLATE_FILES: dict[str, str] = {"llama3": "llama3.jinja", "qwen2_5": "qwen2_5.jinja"}


def chat_template(family: str) -> str:
    """The chat template text evaluation applies to a model of this family."""
    name = CHAT_TEMPLATE_FILES.get(family)
    if name is None:
        known = ", ".join(sorted(CHAT_TEMPLATE_FILES))
        raise SweepflowError(f"model family {family!r} has no evaluation chat format (known: {known})")
    return (CHAT_TEMPLATES_DIR / name).read_text(encoding="utf-8")


def model_args(family: str, device: str) -> dict[str, Any]:
    """Inspect `hf/` provider arguments of an evaluation (`model_path` is added by the job)."""
    args: dict[str, Any] = {
        "chat_template": chat_template(family),
        # the template writes the BOS itself; the tokenizer must not add a second one
        "tokenizer_call_args": {"add_special_tokens": False},
        # greedy: transformers samples unless told not to (and rejects temperature 0 when sampling)
        "do_sample": False,
    }
    if device == "cpu":
        args["device"] = "cpu"
    return args

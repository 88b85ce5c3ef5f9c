"""The token ids torchtune trains on for a dataset row, from a run's own `finetune.yaml`.

Reads: a rendered `finetune.yaml` (its `tokenizer:` and `dataset:` sections) and the tokenizer
files it names. Writes: nothing.
The same steps as torchtune's `instruct_dataset`: `InputOutputToMessages(column_map,
new_system_prompt, train_on_input)` on the row, then the tokenizer's `__call__` (BOS, headers,
end tokens, truncation at `max_seq_len`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from tasks.core._errors import SweepflowError
from tasks.core._repo import REPO_ROOT

_INSTRUCT_DATASET = "torchtune.datasets.instruct_dataset"


@dataclass
class TrainingTokenizer:
    """A run's torchtune tokenizer and message transform, ready to tokenize rows as training does."""

    tokenizer: Any
    column_map: dict[str, str]
    train_on_input: bool

    def tokens(self, row: dict[str, Any], system_prompt: str | None) -> list[int]:
        """The ids of one training sample (prompt and answer) built from `row`."""
        from torchtune.data import InputOutputToMessages

        transform = InputOutputToMessages(
            train_on_input=self.train_on_input, column_map=self.column_map or None,
            new_system_prompt=system_prompt or None,
        )
        return [int(i) for i in self.tokenizer(transform(row))["tokens"]]

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens written out (torchtune's skipping also drops header text)."""
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))


def training_tokenizer(config_text: str, where: str) -> TrainingTokenizer:
    """The tokenizer and transform of a rendered finetune.yaml (`where` names it in errors)."""
    from omegaconf import DictConfig, OmegaConf
    from torchtune import config as tt_config

    cfg = OmegaConf.create(config_text)
    if not isinstance(cfg, DictConfig):
        raise SweepflowError(f"{where}: not a torchtune config (a YAML mapping)")
    dataset = cfg.get("dataset")
    if dataset is None or dataset.get("_component_") != _INSTRUCT_DATASET:
        raise SweepflowError(f"{where}: dataset is not {_INSTRUCT_DATASET}; the fidelity check knows no other")
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))  # project `_component_`s (the tiny model's tokenizer) import
    try:
        tokenizer = tt_config.instantiate(cfg.tokenizer)
    except Exception as error:  # a missing or unreadable tokenizer file, a bad component
        why = f"{type(error).__name__}: {error}"
        raise SweepflowError(f"{where}: torchtune cannot build its tokenizer: {why}") from None
    columns = OmegaConf.to_container(dataset.get("column_map") or OmegaConf.create({}))
    column_map = {str(k): str(v) for k, v in columns.items()} if isinstance(columns, dict) else {}
    return TrainingTokenizer(tokenizer, column_map, bool(dataset.get("train_on_input", False)))

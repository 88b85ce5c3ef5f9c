"""The factor table: every setting a design may vary, with how runs and documents name it.

Reads and writes nothing. One row per factor; the design's validation, run names, the plan's
tables and the experiment README all read this table, so a new factor over an existing
training setting is one row here (plus the torchtune template, where torchtune sees it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tasks.core._templating import format_number

Labels = Literal["number", "dataset", "boolean", "mapping"]


@dataclass(frozen=True)
class Factor:
    """One factor: `prefix` labels numeric levels in run names (`rank4`, `lr3e-4`)."""

    name: str
    title: str  # column and row heading in runs_plan.md
    prefix: str = ""
    labels: Labels = "number"  # how a list of levels is labelled; "mapping": only {label: value}
    value_word: str = "value"  # what one level is, in messages

    @property
    def shown_by_label(self) -> bool:
        """Plan tables show the level's label (the value is long or not a number)."""
        return self.labels != "number"


FACTORS: dict[str, Factor] = {
    f.name: f
    for f in (
        Factor("lora_rank", "LoRA Rank", "rank"),
        Factor("learning_rate", "Learning Rate", "lr"),
        Factor("epochs", "Epochs", "ep"),
        Factor("batch_size", "Batch Size", "bs"),
        Factor("gradient_accumulation_steps", "Gradient Accumulation", "ga"),
        Factor("lora_dropout", "LoRA Dropout", "drop"),
        Factor("weight_decay", "Weight Decay", "wd"),
        Factor("max_seq_len", "Max Seq Len", "seq"),
        Factor("seed", "Seed", "seed"),
        Factor("packed", "Packing", labels="boolean"),
        Factor("system_prompt", "System Prompt", labels="mapping", value_word="prompt"),
        Factor("num_warmup_steps", "Warmup Steps", "warm"),
        Factor("dataset", "Dataset", labels="dataset"),
    )
}


def factor_title(name: str) -> str:
    """The factor's heading in documents (its name when unknown)."""
    factor = FACTORS.get(name)
    return factor.title if factor else name


def _dataset_labels(paths: list[str]) -> list[str]:
    """Label dataset levels by the parts of their file names that differ (words_5L_... -> 5L)."""
    stems = [Path(p).stem for p in paths]
    tokens = [s.split("_") for s in stems]
    if len({len(t) for t in tokens}) == 1 and len(stems) > 1:
        differing = [i for i in range(len(tokens[0])) if len({t[i] for t in tokens}) > 1]
        if differing:
            return ["-".join(t[i] for i in differing) for t in tokens]
    return [s.replace("_", "-") for s in stems]  # '_' separates the parts of a run name


def factor_levels(name: str, levels: list[Any] | dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) pairs of one factor, in the order the design gives them."""
    if isinstance(levels, dict):
        return [(str(label), value) for label, value in levels.items()]
    factor = FACTORS.get(name, Factor(name, name, name))
    if factor.labels == "dataset":
        return list(zip(_dataset_labels([str(v) for v in levels]), levels, strict=True))
    if factor.labels == "boolean":
        return [(name if v else f"un{name}", v) for v in levels]
    if factor.labels == "mapping":
        raise ValueError(f"give {name} levels as a mapping {{label: {factor.value_word}}} so run names stay short")
    return [(f"{factor.prefix}{format_number(v)}", v) for v in levels]

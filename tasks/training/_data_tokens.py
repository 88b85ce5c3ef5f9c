"""A training split's own tokens, as torchtune will see them: lengths, truncation, packs.

Reads: the model folder's tokenizer files (the ones torchtune's config names) and the dataset's
training records (already parsed by verification). Writes: nothing.
Each record is turned into messages by torchtune's `InputOutputToMessages` (the design's column
map and system prompt, `train_on_input` false, as `instruct_dataset` does) and tokenized by the
model's torchtune tokenizer, with no `max_seq_len` so that samples torchtune would cut are seen at
their whole length. Packing follows torchtune's `PackedDataset` with `split_across_pack` false:
samples (cut to `max_seq_len`) are appended in order, and a pack is closed before the sample
that would overflow it. Tokenizations are cached per tokenizer file and data, so a sweep over
ranks or models of one family tokenizes once.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.core._errors import SweepflowError
from tasks.training._registry import ModelSpec

OVER_EXAMPLES = 3


class DataTokens(BaseModel):
    """One training split, tokenized and packed at one `max_seq_len`."""

    model_config = ConfigDict(frozen=True)

    samples: int
    packs: int  # packed sequences of max_seq_len tokens (samples when not packed)
    tokens: int  # tokens trained on per epoch (after truncation, before padding)
    max_seq_len: int
    longest: int  # the longest sample's whole length
    over_max: int  # samples longer than max_seq_len (torchtune cuts them)
    over_examples: list[str] = []  # the first few, as "record <i>: <n> tokens"
    tokenizer: str  # what tokenized them, for the figures' sources

    @property
    def samples_per_pack(self) -> float:
        """Samples per packed sequence (1 unpacked)."""
        return self.samples / self.packs if self.packs else 1.0

    @property
    def mean_tokens(self) -> float:
        """Tokens per sample, on average (after truncation)."""
        return self.tokens / self.samples if self.samples else 0.0


def pack_count(lengths: list[int], max_seq_len: int) -> int:
    """Packs torchtune's PackedDataset (split_across_pack false) makes of samples of these lengths."""
    packs, current = 0, 0
    for length in lengths:
        length = min(length, max_seq_len)
        if current + length > max_seq_len:
            packs, current = packs + 1, 0
        current += length
    return packs + (1 if current else 0)


def _sha(path: Path) -> str:
    stat = path.stat()
    return _sha_of(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha_of(path: str, size: int, mtime_ns: int) -> str:  # keyed by size and mtime: a changed file is read again
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=8)
def _tokenizer(component: str, files: tuple[tuple[str, str], ...]) -> Any:
    from omegaconf import OmegaConf
    from torchtune import config as tt_config

    return tt_config.instantiate(OmegaConf.create({"_component_": component, **dict(files), "max_seq_len": None}))


_LENGTHS: dict[tuple, tuple[int, ...]] = {}


def sample_lengths(spec: ModelSpec, folder: Path, records: list[dict[str, Any]], input_field: str,
                   output_field: str, system_prompt: str, data_key: str) -> tuple[int, ...]:
    """Whole token length of each record as torchtune tokenizes it for training (cached by tokenizer + data)."""
    files = tuple((arg, str(folder / rel)) for arg, rel in sorted(spec.tokenizer_files.items()))
    key = (spec.tokenizer, tuple(_sha(Path(p)) for _, p in files), data_key, input_field, output_field, system_prompt)
    if key in _LENGTHS:
        return _LENGTHS[key]
    from torchtune.data import InputOutputToMessages

    try:
        tokenizer = _tokenizer(spec.tokenizer, files)
    except Exception as error:  # a missing or unreadable tokenizer file
        raise SweepflowError(f"{folder}: torchtune cannot build its tokenizer: {type(error).__name__}: {error}") \
            from None
    transform = InputOutputToMessages(train_on_input=False, column_map={"input": input_field, "output": output_field},
                                      new_system_prompt=system_prompt or None)
    lengths = tuple(len(tokenizer(transform(record))["tokens"]) for record in records)
    _LENGTHS[key] = lengths
    return lengths


def data_tokens(lengths: tuple[int, ...], max_seq_len: int, packed: bool, tokenizer: str) -> DataTokens:
    """Samples, packs and tokens per epoch of a split whose samples have these whole lengths."""
    over = [(i, n) for i, n in enumerate(lengths) if n > max_seq_len]
    return DataTokens(
        samples=len(lengths), packs=pack_count(list(lengths), max_seq_len) if packed else len(lengths),
        tokens=sum(min(n, max_seq_len) for n in lengths), max_seq_len=max_seq_len,
        longest=max(lengths, default=0), over_max=len(over),
        over_examples=[f"record {i}: {n} tokens" for i, n in over[:OVER_EXAMPLES]], tokenizer=tokenizer,
    )


def steps_per_epoch(tokens: DataTokens, batch: int, accumulation: int, ranks: int) -> int:
    """Optimizer steps per rank in one epoch (as torchtune's bar counts them)."""
    return math.ceil(tokens.packs / (batch * accumulation * ranks)) if tokens.packs else 0

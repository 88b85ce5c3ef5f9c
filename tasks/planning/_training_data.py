"""Each run's training split tokenized and packed at plan time; samples torchtune would cut are refused.

Reads: every dataset the runs train on (its train split) and the model folders' tokenizer files.
Writes: nothing. `training_tokens` returns run name -> `DataTokens` (samples per pack, packs,
tokens per epoch) for the estimate, and notes for the runs it could not tokenize (their
estimates fall back to a prior's packing density). Samples longer than `max_seq_len` are a
`DesignError` naming `training.max_seq_len`, with counts and examples, unless
`training.accept_truncation` is true: torchtune cuts them silently, which changes the training data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.core._errors import DesignError, Problem, SweepflowError
from tasks.model._design import ExperimentDesign
from tasks.model._plan import Run, VerifiedResources
from tasks.training._data_tokens import DataTokens, data_tokens, sample_lengths
from tasks.training._registry import lookup


def _train_records(path: Path, split: str) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    records = data.get(split) if isinstance(data, dict) else None
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def training_tokens(design: ExperimentDesign, runs: list[Run],
                    resources: VerifiedResources) -> tuple[dict[str, DataTokens], list[str]]:
    """Run name -> its split's tokens (fine-tuned runs of registry models); notes on what could not be tokenized."""
    folders = {m.name: Path(m.path) for m in resources.models}
    hashes = {Path(d.path): d.sha256 for d in resources.datasets}
    records: dict[tuple[Path, str], list[dict[str, Any]]] = {}
    out: dict[str, DataTokens] = {}
    notes: list[str] = []
    over: dict[tuple[str, str, int], DataTokens] = {}
    failed: set[str] = set()  # models whose tokenizer could not be built: tried once
    memo: dict[tuple, DataTokens] = {}
    for run in runs:
        p, spec, folder = run.params, lookup(run.model), folders.get(run.model)
        if run.is_control or spec is None or folder is None or run.model in failed:
            continue
        path = Path(p.dataset.path)
        key = (path, p.dataset.train_split)
        if key not in records:
            records[key] = _train_records(path, p.dataset.train_split)
        memo_key = (run.model, key, p.dataset.input_field, p.dataset.output_field, p.system_prompt, p.max_seq_len,
                    p.packed)
        if memo_key in memo:  # runs that differ only in settings the tokens do not depend on (rank, rate, ...)
            out[run.name] = memo[memo_key]
            continue
        try:
            lengths = sample_lengths(spec, folder, records[key], p.dataset.input_field, p.dataset.output_field,
                                     p.system_prompt, f"{hashes.get(path, path)}:{p.dataset.train_split}")
        except SweepflowError as error:
            failed.add(run.model)
            notes.append(f"{run.model}: the training data could not be tokenized ({error}); packing density and "
                         "steps come from prior logs or the seed's default instead.")
            continue
        tokens = data_tokens(lengths, p.max_seq_len, p.packed, f"{run.model}'s torchtune tokenizer")
        out[run.name] = memo[memo_key] = tokens
        if tokens.over_max:
            over.setdefault((str(path), run.model, p.max_seq_len), tokens)
    if over and not design.training.accept_truncation:
        raise DesignError([_truncation_problem(path, model, tokens) for (path, model, _), tokens in over.items()],
                          heading="Training samples longer than max_seq_len")
    return out, list(dict.fromkeys(notes))


def _truncation_problem(path: str, model: str, tokens: DataTokens) -> Problem:
    return Problem(
        field="training.max_seq_len",
        message=f"{tokens.over_max} of {tokens.samples} training samples are longer than max_seq_len "
        f"{tokens.max_seq_len} with {model}'s tokenizer (longest {tokens.longest} tokens; "
        f"{', '.join(tokens.over_examples)}): torchtune would cut them silently. Raise max_seq_len, shorten "
        "or drop those samples, or set training.accept_truncation: true to train on the cut samples",
        path=path,
    )

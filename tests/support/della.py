"""A della-shaped site, as issue 20 describes it, for planning tests: what a new lab user would have.

Under a root folder: Llama-3.2-1B/3B-Instruct folders with the real config.json dims, Meta's
tokenizer and sparse weight files of the real checkpoints' sizes (`fakesite.make_models`); a
10,000-word capitalization dataset (`{"input": "word", "output": "Word"}`: ~21 tokens once
chat-formatted); a prior-run folder holding the recorded torchtune log of a 1B rank-64 run
(`Model checkpoint of size 2.30 GiB saved`) whose `epoch_*` folders hold placeholders (as after a
user prunes merged weights); and cluster settings with account, partition, constraint and
modules + conda. `della_design(root, ranks=..., ...)` is a design over it.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from tests.support import fakesite
from tests.support.paths import REPO_DIR

PRIOR_RUN = REPO_DIR / "tests" / "fixtures" / "prior_runs" / "cap_5L_sweep_2025-09-30" / "Llama-3.2-1B-Instruct_5L_rank64"
MODELS = ["Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"]
CLUSTER: dict[str, Any] = {
    "account": "mjs3", "partition": "gpu", "constraint": "gpu80", "max_time_limit": "1-00:00:00",
    "job_env": {"modules": ["anaconda3/2024.6"], "conda": "sweepflow-jobs"},
    "backend": "slurm",
}


def words(n: int, seed: int = 0) -> list[str]:
    """`n` distinct lowercase letter strings of 5 to 9 letters (a word list's shape, deterministic)."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < n:
        found["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(5, 9)))] = None
    return list(found)


def make_della(root: Path, rows: int = 10_000) -> dict[str, Any]:
    """The site's resources under `root`; returns the design's dataset/evaluation/paths parts."""
    parts = fakesite.make_site(root, models=[])
    fakesite.make_models(root / "models", MODELS, real_size_weights=True)
    records = [{"input": w, "output": w.capitalize()} for w in words(rows)]
    n_train, n_val = rows * 8 // 10, rows // 10
    dataset = root / "data" / f"words_{rows}.json"
    dataset.write_text(json.dumps({"train": records[:n_train], "validation": records[n_train:n_train + n_val],
                                   "test": records[n_train + n_val:]}))
    prior = root / "prior_runs" / "cap_5L_sweep_2025-09-30" / PRIOR_RUN.name
    shutil.copytree(PRIOR_RUN, prior)
    parts["dataset"] = {"path": str(dataset)}
    parts["paths"]["prior_runs"] = [str(root / "prior_runs")]
    return parts


def della_design(root: Path, ranks: list[int] = (4, 64), name: str = "della", **changes: Any) -> dict[str, Any]:
    """A models x ranks design (plus controls) over the della-shaped site under `root`, 2 epochs, packed."""
    data = {
        "name": name, "question": "Does LoRA rank matter for capitalization?", "task": "capitalization",
        "models": MODELS, "factors": {"lora_rank": list(ranks)},
        "training": {"epochs": 2, "packed": True, "max_seq_len": 2048},
        "cluster": dict(CLUSTER), **make_della(root),
    }
    data.update(changes)
    return data

"""Fake site resources for flow tests: model folders, a dataset and an eval script in a folder.

The model folders hold config.json and the exact weight file names torchtune loads
(`tasks.training._registry`), filled with a few zero bytes (verification checks presence, not
content), and for Llama-3.x the real tokenizer files, which setup's fidelity check reads.
The evaluation script is a real inspect task (`TASK_FILE`) that meets the task contract. Nothing here needs a network or a GPU. `FakeSite` is the same over one folder: the
`fake_site` fixture of tests/conftest.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tasks.training._registry import lookup
from tests.support.llama3_real import make_llama3_instruct_folder

MODELS = ["Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"]
DATE = "2026-01-02"
FILES = {"experiment.yaml", "runs_plan.md", "runs_status.yaml"}


def delivered(group: Path) -> set[str]:
    """What a run group folder shows, less sweepflow's hidden state folder (`.sweepflow/`: caches)."""
    return {p.name for p in group.iterdir() if p.name != ".sweepflow"}


# An inspect-ai task file that meets sweepflow's task contract: the example capitalization task.
TASK_FILE = '''"""inspect-ai task of the fake site: examples/capitalization under another name."""
from inspect_ai import task

from examples.capitalization.eval import capitalization


@task
def cap(dataset=None, system_prompt="", split="test", input_field="input", output_field="output"):
    return capitalization(dataset, system_prompt, split, input_field, output_field)
'''


# config.json shapes of the real checkpoints (meta-llama/<name>/config.json), and their weight files' sizes
REAL_CONFIGS = {
    "Llama-3.2-1B-Instruct": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                              "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                              "tie_word_embeddings": True, "torch_dtype": "bfloat16"},
    "Llama-3.2-3B-Instruct": {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
                              "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
                              "tie_word_embeddings": True, "torch_dtype": "bfloat16"},
    "Llama-3.1-8B-Instruct": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                              "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                              "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
}
REAL_WEIGHT_BYTES = {
    "Llama-3.2-1B-Instruct": [2_471_645_608],
    "Llama-3.2-3B-Instruct": [4_965_799_096, 1_459_729_952],
}


def make_models(models_dir: Path, names: list[str], real_size_weights: bool = False) -> None:
    """A folder per model: config.json (a real checkpoint's dims, `REAL_CONFIGS`), the weight files torchtune
    loads (a few zero bytes; `real_size_weights`: sparse files of the real checkpoint's sizes, which take no
    disk) and, for Llama-3.x, the real Llama-3 tokenizer files (tests/support/llama3_real.py); for other
    families, placeholder tokenizer files (the planner checks they exist; nothing here reads them)."""
    for name in names:
        folder = models_dir / name
        spec = lookup(name)
        if spec.family == "llama3":
            make_llama3_instruct_folder(folder, spec.checkpoint_files, (spec.hidden_size, spec.num_layers),
                                        config=REAL_CONFIGS.get(name))
            sizes = REAL_WEIGHT_BYTES.get(name) if real_size_weights else None
            for weight, size in zip(spec.checkpoint_files, sizes or [], strict=False):
                with (folder / weight).open("r+b") as handle:
                    handle.truncate(size)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
        for weight in spec.checkpoint_files:
            (folder / weight).write_bytes(b"\0" * 256)
        for tokenizer_file in (*spec.tokenizer_files.values(), "tokenizer.json", "tokenizer_config.json"):
            (folder / tokenizer_file).parent.mkdir(parents=True, exist_ok=True)
            (folder / tokenizer_file).write_text("{}")


def make_site(root: Path, models: list[str] = MODELS, rows: int = 200) -> dict:
    """Create the resources under `root`; return the design's dataset/evaluation/paths parts."""
    models_dir = root / "models"
    make_models(models_dir, models)
    records = [{"input": f"word{i}", "output": f"Word{i}"} for i in range(rows)]
    n_train, n_val = rows * 8 // 10, rows // 10
    dataset = root / "data" / "words_5L.json"
    dataset.parent.mkdir(parents=True, exist_ok=True)
    dataset.write_text(json.dumps({
        "train": records[:n_train],
        "validation": records[n_train:n_train + n_val],
        "test": records[n_train + n_val:],
    }))
    script = root / "evals" / "cap.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(TASK_FILE)
    return {
        "dataset": {"path": str(dataset)},
        "evaluation": {"tasks": [{"name": "cap", "script": str(script)}]},
        "paths": {"models_dir": str(models_dir), "output_dir": str(root / "out")},
    }


def design(root: Path, name: str = "exp", **changes) -> dict:
    """A 2 models x 2 ranks design (plus 2 controls) over resources made under `root`."""
    data = {
        "name": name,
        "question": "Does LoRA rank matter?",
        "task": "capitalization",
        "models": MODELS,
        "factors": {"lora_rank": [4, 64]},
        "training": {"epochs": 2},
        **make_site(root),
    }
    data.update(changes)
    return data


def group_dir(root: Path, name: str = "exp", date: str = DATE) -> Path:
    return root / "out" / f"{name}_{date}"


@dataclass
class FakeSite:
    """The fake resources made under `root` (`make_site`), and designs and run-group folders over them."""

    root: Path
    resources: dict = field(init=False)

    def __post_init__(self) -> None:
        self.resources = make_site(self.root)

    def design(self, name: str = "exp", **changes) -> dict:
        """`design(root, name, **changes)`: a 2 models x 2 ranks design over this site."""
        return design(self.root, name, **changes)

    def group_dir(self, name: str = "exp", date: str = DATE) -> Path:
        """Where plan-runs delivers the run group `name` planned on `date`."""
        return group_dir(self.root, name, date)

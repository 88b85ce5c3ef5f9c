"""verify_resources: models, datasets, eval files and the output folder, all problems at once."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.core._errors import DesignError
from tasks.model._design import ExperimentDesign
from tasks.model._design_file import load_design
from tasks.model._plan import VerifiedResources
from tasks.planning._expand import expand_design
from tasks.planning._verify import check_disk, verify_resources
from tasks.training._registry import lookup
from tests.support.fakesite import TASK_FILE
from tests.support.paths import REPO_DIR

EXAMPLE = REPO_DIR / "examples" / "seed_2x2" / "design.yaml"
MODELS = ("Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct")
DATASET = "tasks/capitalization/input/words_8L_80P_10000.json"


def records(n: int, prefix: str = "w") -> list[dict[str, str]]:
    return [{"input": f"{prefix}{i}", "output": f"{prefix.upper()}{i}"} for i in range(n)]


def write_dataset(path: Path, data: Any | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = {"train": records(8), "validation": records(2, "v"), "test": records(3, "t")}
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def make_model(models_dir: Path, name: str) -> Path:
    """A fake model folder: config.json and the weight files the registry expects (a few bytes each)."""
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    spec = lookup(name)
    assert spec is not None
    for file in [*spec.checkpoint_files, *spec.tokenizer_files.values(), "tokenizer.json", "tokenizer_config.json"]:
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_bytes(b"\0" * 16)
    return folder


@pytest.fixture
def env(tmp_path: Path) -> Path:
    """A folder holding everything the seed example names, with paths pointing into it."""
    for model in MODELS:
        make_model(tmp_path / "models", model)
    write_dataset(tmp_path / DATASET)
    for script in ("tasks/capitalization/eval.py", "tasks/reasoning/eval.py"):
        (tmp_path / script).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / script).write_text(TASK_FILE)
    (tmp_path / "tasks/reasoning/test.json").write_text("[]")
    return tmp_path


def design_in(root: Path, **changes: Any) -> ExperimentDesign:
    """The seed example with its paths moved under `root`; `changes` update top-level sections."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["paths"] = {"models_dir": "models", "output_dir": "out/experiments", "prior_runs": ["old_runs"]}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    (root / "design.yaml").write_text(yaml.safe_dump(data))
    return load_design(root / "design.yaml")


def verify(design: ExperimentDesign) -> VerifiedResources:
    return verify_resources(design, expand_design(design))


def problems_of(design: ExperimentDesign) -> dict[str, list[str]]:
    with pytest.raises(DesignError) as caught:
        verify(design)
    assert caught.value.heading == "Resources are missing or invalid"
    found: dict[str, list[str]] = {}
    for problem in caught.value.problems:
        assert problem.path, f"{problem} names no path"
        found.setdefault(problem.field, []).append(f"{problem.message} [{problem.path}]")
    return found


def test_everything_present(env: Path) -> None:
    resources = verify(design_in(env))
    assert [m.name for m in resources.models] == list(MODELS)
    assert resources.models[0].path == env / "models" / MODELS[0]
    assert resources.models[0].size_bytes == 2 + 4 * 16  # config.json + weight file + 3 tokenizer files
    (dataset,) = resources.datasets
    raw = (env / DATASET).read_bytes()
    assert dataset.path == env / DATASET
    assert dataset.size_bytes == len(raw)
    assert dataset.sha256 == hashlib.sha256(raw).hexdigest()
    assert (dataset.splits.train, dataset.splits.validation, dataset.splits.test) == (8, 2, 3)
    assert resources.eval_scripts == {
        "capitalization_8L": env / "tasks/capitalization/eval.py",
        "reasoning": env / "tasks/reasoning/eval.py",
    }
    assert resources.eval_datasets == {"reasoning": env / "tasks/reasoning/test.json"}
    assert resources.free_disk_gib is not None and resources.free_disk_gib > 0


def test_missing_prior_runs_folder_is_not_an_error(env: Path) -> None:
    design = design_in(env)
    assert not Path(design.paths.prior_runs[0]).exists()  # type: ignore[union-attr]
    verify(design)


def test_missing_model_folder(env: Path) -> None:
    folder = env / "models" / MODELS[1]
    shutil.rmtree(folder)
    found = problems_of(design_in(env))
    assert list(found) == ["models[1]"]
    assert "not found" in found["models[1]"][0] and str(folder) in found["models[1]"][0]


def test_model_without_config(env: Path) -> None:
    (env / "models" / MODELS[0] / "config.json").unlink()
    found = problems_of(design_in(env))
    assert list(found) == ["models[0]"]
    assert "config.json is missing" in found["models[0]"][0]


def test_model_without_original_tokenizer_or_hf_tokenizer_names_the_files(env: Path) -> None:
    # a download that skipped original/ (to avoid the duplicate .pth) used to pass every check
    (env / "models" / MODELS[0] / "original" / "tokenizer.model").unlink()
    (env / "models" / MODELS[1] / "tokenizer.json").unlink()
    found = problems_of(design_in(env))
    assert "tokenizer file(s) missing: original/tokenizer.model; torchtune's tokenizer reads them" in found["models[0]"][0]
    assert "--include 'original/tokenizer.model'" in found["models[0]"][0]
    assert "tokenizer file(s) missing: tokenizer.json; inspect's hf/ provider loads them" in found["models[1]"][0]


def test_model_folder_holding_another_model_names_both(env: Path) -> None:
    (env / "models" / MODELS[1] / "config.json").write_text(json.dumps({"hidden_size": 2048, "num_hidden_layers": 16}))
    message = problems_of(design_in(env))["models[1]"][0]
    assert "Llama-3.2-3B-Instruct: config.json has hidden_size 2048 and 16 layers (the shape of Llama-3.2-1B-Instruct" in message
    assert "but Llama-3.2-3B-Instruct has 3072 and 28: the folder holds another model" in message


def test_lora_rank_above_the_hidden_size_is_refused(env: Path) -> None:
    design = design_in(env, factors={"lora_rank": [4, 4096]})
    with pytest.raises(DesignError) as caught:
        verify(design)
    message = caught.value.render()
    assert "factors.lora_rank: run Llama-3.2-1B-Instruct_rank4096: lora_rank 4096 is above Llama-3.2-1B-Instruct's hidden size 2048" in message
    assert "lora_rank 4096 is above Llama-3.2-3B-Instruct's hidden size 3072" in message  # each run named
    assert "rank4:" not in message.replace("rank4096", "")


def test_model_missing_a_weight_shard_names_it(env: Path) -> None:
    (env / "models" / MODELS[1] / "model-00002-of-00002.safetensors").unlink()
    found = problems_of(design_in(env))
    message = found["models[1]"][0]
    assert "model-00002-of-00002.safetensors" in message
    assert "missing" in message and "found model-00001-of-00002.safetensors" in message


def test_model_with_other_weight_files_still_reports_expected_ones(env: Path) -> None:
    folder = env / "models" / MODELS[0]
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    message = problems_of(design_in(env))["models[0]"][0]
    assert "model.safetensors" in message and "found pytorch_model.bin" in message


def test_missing_models_dir_reported_once(env: Path) -> None:
    (env / "models").rename(env / "elsewhere")
    found = problems_of(design_in(env))
    assert list(found) == ["paths.models_dir"]
    assert str(env / "models") in found["paths.models_dir"][0]


def test_missing_dataset(env: Path) -> None:
    (env / DATASET).unlink()
    found = problems_of(design_in(env))
    assert list(found) == ["dataset.path"]
    assert "not found" in found["dataset.path"][0] and DATASET in found["dataset.path"][0]


def test_dataset_not_json_gives_line_and_column(env: Path) -> None:
    write_dataset(env / DATASET, '{"train": [\n  {"input": "a", "output": "A"},\n  oops\n]}')
    message = problems_of(design_in(env))["dataset.path"][0]
    assert "not valid JSON (line 3, column 3)" in message


def test_dataset_binary_file(env: Path) -> None:
    (env / DATASET).write_bytes(b"\xff\xfe\x00binary")
    assert "not UTF-8" in problems_of(design_in(env))["dataset.path"][0]


def test_dataset_must_be_an_object(env: Path) -> None:
    write_dataset(env / DATASET, records(3))
    assert "must be one JSON object" in problems_of(design_in(env))["dataset.path"][0]


def test_missing_test_split_named(env: Path) -> None:
    write_dataset(env / DATASET, {"train": records(4), "validation": records(1)})
    (message,) = problems_of(design_in(env))["dataset.path"]
    assert "no 'test' split" in message and "'train', 'validation'" in message and DATASET in message


def test_validation_split_only_needed_when_validating(env: Path) -> None:
    write_dataset(env / DATASET, {"train": records(4), "test": records(2)})
    resources = verify(design_in(env))
    assert resources.datasets[0].splits.validation == 0

    found = problems_of(design_in(env, training={"validation": True}))
    assert "no 'validation' split" in found["dataset.path"][0]
    assert "training.validation is true" in found["dataset.path"][0]

    found = problems_of(design_in(env, training={"validation": True}, evaluation={"epochs": "best"}))
    assert "evaluation.epochs is 'best'" in found["dataset.path"][0]


def test_empty_split(env: Path) -> None:
    write_dataset(env / DATASET, {"train": [], "validation": records(1), "test": records(2)})
    assert "split 'train' is empty" in problems_of(design_in(env))["dataset.path"][0]


def test_first_bad_record_index(env: Path) -> None:
    train = records(5)
    del train[3]["output"]
    train[4] = {"text": "x"}
    write_dataset(env / DATASET, {"train": train, "validation": records(1), "test": records(2)})
    message = problems_of(design_in(env))["dataset.path"][0]
    assert "split 'train' record 3 has no 'output' field" in message
    assert "2 of 5 records" in message


def test_configured_split_and_field_names(env: Path) -> None:
    data = {"tr": [{"q": "a", "a": "A"}], "te": [{"q": "b", "a": "B"}]}
    write_dataset(env / "custom.json", data)
    spec = {"path": "custom.json", "train_split": "tr", "test_split": "te", "input_field": "q", "output_field": "a"}
    resources = verify(design_in(env, dataset=spec))
    assert (resources.datasets[0].splits.train, resources.datasets[0].splits.test) == (1, 1)

    write_dataset(env / "custom.json", {"tr": [{"input": "a", "output": "A"}], "te": data["te"]})
    message = problems_of(design_in(env, dataset=spec))["dataset.path"][0]
    assert "record 0 has no 'q' or 'a' field" in message


def test_dataset_factor_checks_every_level(env: Path) -> None:
    write_dataset(env / "data/words_5L_80P_10000.json")
    levels = ["data/words_5L_80P_10000.json", "data/words_13L_80P_10000.json"]
    found = problems_of(design_in(env, factors={"lora_rank": [4], "dataset": levels}, evaluation={"matrix": None}))
    assert list(found) == ["factors.dataset[1]"]
    assert "words_13L_80P_10000.json" in found["factors.dataset[1]"][0]

    write_dataset(env / "data/words_13L_80P_10000.json", {"train": records(20), "validation": [], "test": records(4)})
    resources = verify(design_in(env, factors={"lora_rank": [4], "dataset": levels}, evaluation={"matrix": None}))
    counts = {d.path.name: d.splits.train for d in resources.datasets}
    # the factor's two files, plus the design's own dataset that the control runs use
    assert counts == {"words_5L_80P_10000.json": 8, "words_13L_80P_10000.json": 20, "words_8L_80P_10000.json": 8}


def test_eval_script_and_dataset_missing(env: Path) -> None:
    (env / "tasks/reasoning/eval.py").unlink()
    (env / "tasks/reasoning/test.json").unlink()
    found = problems_of(design_in(env))
    assert set(found) == {"evaluation.tasks[1].script", "evaluation.tasks[1].dataset"}
    assert "reasoning: evaluation script not found" in found["evaluation.tasks[1].script"][0]
    assert "tasks/reasoning/test.json" in found["evaluation.tasks[1].dataset"][0]


def test_output_dir_under_a_file(env: Path) -> None:
    (env / "out").write_text("not a folder")
    found = problems_of(design_in(env))
    assert "is a file, not a folder" in found["paths.output_dir"][0]


def test_output_dir_not_writable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tasks.planning._verify.os.access", lambda path, mode: False)
    message = problems_of(design_in(env))["paths.output_dir"][0]
    assert "not writable" in message and "nearest existing parent" in message


def test_paths_block_name_must_be_resolved_first(env: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["paths"] = "my-paths"
    (env / "design.yaml").write_text(yaml.safe_dump(data))
    design = load_design(env / "design.yaml")
    with pytest.raises(DesignError) as caught:
        verify_resources(design, [])
    assert caught.value.problems[0].field == "paths"
    assert "my-paths" in str(caught.value)


def test_all_problems_come_together(env: Path) -> None:
    (env / "models" / MODELS[0] / "config.json").unlink()
    (env / "models" / MODELS[1] / "model-00001-of-00002.safetensors").unlink()
    write_dataset(env / DATASET, {"train": records(3), "validation": records(1)})
    (env / "tasks/capitalization/eval.py").unlink()
    (env / "tasks/reasoning/test.json").unlink()
    (env / "out").write_text("")
    with pytest.raises(DesignError) as caught:
        verify(design_in(env))
    fields = [p.field for p in caught.value.problems]
    assert fields == [
        "models[0]",
        "models[1]",
        "dataset.path",
        "evaluation.tasks[0].script",
        "evaluation.tasks[1].dataset",
        "paths.output_dir",
    ]
    text = str(caught.value)
    assert text.startswith("Resources are missing or invalid (6):")
    assert "Traceback" not in text


def test_check_disk(env: Path) -> None:
    resources = verify(design_in(env))
    free = resources.free_disk_gib
    assert free is not None
    assert check_disk(resources, free / 2) == []
    (problem,) = check_disk(resources, free + 100, output_dir=env / "out")
    assert problem.field == "paths.output_dir" and problem.path == str(env / "out")
    assert "GiB" in problem.message and "free" in problem.message
    assert check_disk(resources.model_copy(update={"free_disk_gib": None}), 1e9) == []


def test_eval_dataset_must_be_a_file(env: Path) -> None:
    (env / "tasks/reasoning/test.json").unlink()
    (env / "tasks/reasoning/test.json").mkdir()
    found = problems_of(design_in(env))
    assert "reasoning: is a folder" in found["evaluation.tasks[1].dataset"][0]

"""Steps from the data's own tokens: the training split tokenized with the model's torchtune tokenizer, packed
as torchtune packs, truncation refused unless accepted, and a prior's speed carried over as tokens per second.

On the della-shaped site (tests/support/della.py): Meta's Llama-3 tokenizer, a 10,000-word dataset.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from tasks.core._errors import DesignError
from tasks.model._design import ExperimentDesign
from tasks.planning._planner import build_plan
from tasks.training._data_tokens import pack_count
from tests.support.della import della_design

M1 = "Llama-3.2-1B-Instruct"


def test_packing_matches_torchtunes_packed_dataset() -> None:
    from torchtune.datasets import PackedDataset

    lengths = [5, 9, 3, 16, 1, 7, 7, 2, 11, 4, 16, 8, 8, 1]
    samples = [{"tokens": [1] * n, "labels": [1] * n} for n in lengths]
    for max_seq_len in (16, 17, 20, 33):
        packed = PackedDataset(samples, max_seq_len=max_seq_len, split_across_pack=False)
        assert pack_count(lengths, max_seq_len) == len(packed), max_seq_len


def test_della_steps_come_from_its_own_tokens(tmp_path: Path) -> None:
    started = time.perf_counter()
    plan = build_plan(ExperimentDesign.model_validate(della_design(tmp_path)), date="2026-12-01")
    seconds = time.perf_counter() - started
    density = plan.estimates.per_model[M1].packing_density
    # ~20 tokens per chat-formatted word (system header included): ~100 per 2,048-token pack, not the prior's 2.81
    assert 80 < density.value < 110
    assert density.source.startswith("tokenized: 8000 samples") and "packed into" in density.source
    run = plan.estimates.runs[f"{M1}_rank4"]
    packs = round(8000 / density.value)
    assert run.steps_per_epoch == math.ceil(packs / plan.run(f"{M1}_rank4").params.batch_size)
    speed = plan.estimates.per_model[M1].speed_it_s
    assert "tokens/s per GPU" in speed.source  # the 1B prior (2.81 samples per pack) converted by tokens
    # 4.35 it/s x batch 4 x 2,048 tokens = 35,635 tokens/s: this data's packs take as long as the prior's
    minutes_training = packs * 2048 / (4.35 * 4 * 2048) / 60
    assert run.minutes_per_epoch == pytest.approx(minutes_training + 0.0, abs=2.0)
    assert seconds < 30  # measured and reported separately; generous here for a loaded CI machine


def test_samples_longer_than_max_seq_len_are_refused_unless_accepted(tmp_path: Path) -> None:
    data = della_design(tmp_path, training={"epochs": 1, "max_seq_len": 24})
    with pytest.raises(DesignError) as error:
        build_plan(ExperimentDesign.model_validate(data), date="2026-12-01")
    problem, problem_3b = [p for p in error.value.problems if p.field == "training.max_seq_len"]  # one per model
    assert f"with {M1}'s tokenizer" in problem.message and "3B" in problem_3b.message
    assert "training samples are longer than max_seq_len 24" in problem.message
    assert "accept_truncation" in problem.message and "record " in problem.message
    n_over = int(problem.message.split(" of ")[0])
    assert 0 < n_over < 8000
    # the count is the data's own: every record whose chat-formatted tokens exceed 24
    accepted = {**data, "training": {**data["training"], "accept_truncation": True}}
    plan = build_plan(ExperimentDesign.model_validate(accepted), date="2026-12-01")
    assert plan.estimates.per_model[M1].packing_density.value == pytest.approx(1.0, abs=0.01)  # 24-token packs


def test_a_long_record_is_named(tmp_path: Path) -> None:
    data = della_design(tmp_path)
    path = Path(data["dataset"]["path"])
    content = json.loads(path.read_text())
    content["train"][7]["input"] = "word " * 3000
    path.write_text(json.dumps(content))
    with pytest.raises(DesignError) as error:
        build_plan(ExperimentDesign.model_validate(data), date="2026-12-01")
    message = str(error.value)
    assert "1 of 8000 training samples are longer than max_seq_len 2048" in message and "record 7:" in message


def test_a_700_run_plan_stays_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overview and compute summary first; the directory tree as a pattern with examples; <= 3 lines per run."""
    import tasks.planning._planner as planner
    from tasks.planning._plan_markdown import render_plan_markdown

    monkeypatch.setattr(planner, "check_disk", lambda *args, **kwargs: [])  # ~7 TiB: this test is about the text
    data = della_design(tmp_path, ranks=list(range(1, 351)))
    plan = build_plan(ExperimentDesign.model_validate(data), date="2026-12-01")
    assert len(plan.runs) == 702
    lines = render_plan_markdown(plan).splitlines()
    assert len(lines) <= 3 * len(plan.runs)
    overview = lines[:lines.index("## Variables")]
    compute = next(line for line in overview if line.startswith("- **Compute**"))
    assert f"{plan.estimates.total_gpu_hours:.1f}" in compute and "GiB" in compute
    assert "  ... 699 more run folders of the same shape (All Runs lists every name)" in lines
    all_runs = lines[lines.index("## All Runs"):lines.index("## Resources")]
    assert sum(line.startswith(f"| {M1}_rank") for line in all_runs) == 350  # the table stays complete
    limits = lines[lines.index("### Job Time Limits"):lines.index("### Disk Space Estimates")]
    assert any("and 349 more (350 runs) | fine-tune |" in line for line in limits)

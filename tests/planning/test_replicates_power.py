"""Replicates (seeds, names, counts, bad values) and the plan's statistical power section."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from tasks.core._errors import DesignError
from tasks.model._design_file import parse_design
from tasks.planning import build_plan, design_hash
from tasks.planning._expand import count_runs, expand_design
from tests.support.setup_groups import planned


def test_replicates_train_every_cell_with_its_own_recorded_seed(fake_site, tmp_path: Path) -> None:
    design = parse_design(fake_site.design(name="reps", replicates=3), base=tmp_path)
    runs = expand_design(design)
    tuned = [r for r in runs if not r.is_control]
    assert len(tuned) == count_runs(design) - len(design.models) == 2 * 2 * 3
    cell = "Llama-3.2-1B-Instruct_rank4"
    mine = [r for r in tuned if r.cell_name == cell]
    assert [r.name for r in mine] == [f"{cell}_rep1", f"{cell}_rep2", f"{cell}_rep3"]
    assert [r.params.seed for r in mine] == [42, 1042, 2042]  # training.seed, then +1000 per replicate
    assert [r.name for r in runs if r.is_control] == ["Llama-3.2-1B-Instruct_base", "Llama-3.2-3B-Instruct_base"]
    data = fake_site.design(name="reps", replicates=3)
    data["training"] = {**data.get("training", {}), "save_adapter_weights_only": True}  # fits the disk here
    group = planned(data, base=tmp_path)
    config = yaml.safe_load((group / f"{cell}_rep2" / "finetune.yaml").read_text()) if (
        group / f"{cell}_rep2" / "finetune.yaml").exists() else None
    assert config is None or config["seed"] == 1042
    text = (group / "runs_plan.md").read_text()
    assert "**Replicates**: 3 per fine-tuned cell (4 cells × 3 = 12 fine-tunes)" in text
    assert "replicate 1: 42; replicate 2: 1042; replicate 3: 2042" in text
    assert "Base models are evaluated once (decoding is greedy" in text


def test_one_replicate_keeps_names_seeds_and_the_design_hash(fake_site, tmp_path: Path) -> None:
    plain = parse_design(fake_site.design(name="one"), base=tmp_path)
    explicit = parse_design(fake_site.design(name="one", replicates=1), base=tmp_path)
    assert design_hash(plain) == design_hash(explicit)  # groups planned before replicates existed resume
    assert all("_rep" not in r.name and r.params.seed == 42 for r in expand_design(plain))


@pytest.mark.parametrize("value", [0, 2.5, "two", True])
def test_bad_replicates_are_refused_naming_the_field(fake_site, tmp_path: Path, value: object) -> None:
    with pytest.raises(DesignError) as error:
        parse_design(fake_site.design(name="bad", replicates=value), base=tmp_path)
    assert [p.field for p in error.value.problems] == ["replicates"]


def test_a_seed_level_equal_to_a_replicate_seed_is_refused(fake_site, tmp_path: Path) -> None:
    data = fake_site.design(name="clash", replicates=2)
    data["factors"] = {"seed": [42, 1042]}
    with pytest.raises(DesignError) as error:
        expand_design(parse_design(data, base=tmp_path))
    assert "identical settings" in str(error.value) and "seed 1042" in str(error.value)


def test_plan_states_the_detectable_difference_and_warns(fake_site, tmp_path: Path) -> None:
    design = parse_design(fake_site.design(name="power", analysis={"min_difference": 0.05}), base=tmp_path)
    plan = build_plan(design, date="2025-10-18")
    assert plan.power is not None
    [row] = plan.power.tasks
    n = row.n_items
    assert n == 20  # the fake site's test split
    from scipy import stats

    t = stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)  # the t approximation of a paired t-test's power
    assert row.detectable == pytest.approx(t * math.sqrt(0.5) / math.sqrt(n), rel=0.01)
    z = 1.959964 + 0.841621
    assert row.items_for_target == pytest.approx((z * math.sqrt(0.5) / 0.05) ** 2, rel=0.02)
    warnings = " ".join(plan.power.warnings)
    assert "not the 0.05 set in analysis.min_difference" in warnings and "replicates: 1" in warnings
    text = (planned(design, base=tmp_path) / "runs_plan.md").read_text()
    section = text[text.index("## Statistical power"):text.index("## Configuration")]
    assert f"| {row.task} | 20 | {row.detectable:.3f} |" in section
    assert "**Warning**: replicates: 1" in section


def test_replicated_plan_has_no_seed_warning(fake_site, tmp_path: Path) -> None:
    data = fake_site.design(name="two", replicates=2)
    data["training"] = {**data.get("training", {}), "save_adapter_weights_only": True}  # fits the disk here
    plan = build_plan(parse_design(data, base=tmp_path), date="2025-10-18")
    assert plan.power is not None and not [w for w in plan.power.warnings if "replicates" in w]
    assert plan.power.cells == 4 and len(plan.finetune_runs) == 8


def test_power_learns_the_paired_sd_from_earlier_results(fake_site, tmp_path: Path) -> None:
    import csv
    import statistics

    data = fake_site.design(name="learned")
    task = data["evaluation"]["tasks"][0]["name"]
    model = data["models"][0]
    prior = tmp_path / "prior" / "old_2025-01-01" / "results"
    prior.mkdir(parents=True)
    base = [1, 0, 0, 1, 0, 0, 1, 0, 0, 0]
    tuned = [1, 1, 0, 1, 1, 0, 1, 1, 0, 1]
    with (prior / "samples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "kind", "model", "lora_rank", "replicate", "seed", "task", "epoch", "sample_id",
                         "sample_epoch", "target", "answer", "score"])
        for i, (b, t) in enumerate(zip(base, tuned, strict=True)):
            writer.writerow([f"{model}_base", "control", model, "base", "", "", task, "base", i, 1, "x", "x", b])
            writer.writerow([f"{model}_rank4", "finetune", model, "rank4", 1, 42, task, "1", i, 1, "x", "x", t])
            writer.writerow([f"{model}_rank4", "finetune", model, "rank4", 1, 42, "other", "1", i, 1, "x", "x", 0])
        # an older samples.csv could hold a NaN score: it is no score, not a NaN SD
        writer.writerow([f"{model}_base", "control", model, "base", "", "", task, "base", 10, 1, "x", "x", "nan"])
        writer.writerow([f"{model}_rank4", "finetune", model, "rank4", 1, 42, task, "1", 10, 1, "x", "x", "1.0"])
    data["paths"] = {**data["paths"], "prior_runs": [str(tmp_path / "prior")]}
    plan = build_plan(parse_design(data, base=tmp_path), date="2025-10-18")
    assert plan.power is not None
    [row] = plan.power.tasks
    expected = statistics.stdev([t - b for b, t in zip(base, tuned, strict=True)])
    assert row.sd == pytest.approx(expected) and "old_2025-01-01" in row.sd_source
    conservative = build_plan(parse_design(fake_site.design(name="fresh"), base=tmp_path), date="2025-10-18")
    assert conservative.power is not None and conservative.power.tasks[0].sd == pytest.approx(math.sqrt(0.5))
    assert row.detectable == pytest.approx(conservative.power.tasks[0].detectable * expected / math.sqrt(0.5))

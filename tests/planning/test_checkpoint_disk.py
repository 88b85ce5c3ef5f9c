"""Disk per epoch from what training writes: torchtune's reported save, the model's weights and dims, the adapter.

On the della-shaped site (tests/support/della.py): real config.json dims, sparse weight files of the real
sizes, and a prior log that says `Model checkpoint of size 2.30 GiB saved` beside placeholder epoch_* folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.core._errors import DesignError
from tasks.model._design import ExperimentDesign
from tasks.planning._planner import build_plan
from tasks.training._checkpoint_size import checkpoint_size, read_dims
from tasks.training._registry import lookup
from tests.support import fakesite
from tests.support.della import della_design

M1, M3 = "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"
GIB = 1024**3


def test_merged_and_adapter_sizes_from_the_real_dims(tmp_path: Path) -> None:
    fakesite.make_models(tmp_path, [M1, M3], real_size_weights=True)
    dims1, dims3 = read_dims(tmp_path / M1), read_dims(tmp_path / M3)
    assert dims1 is not None and dims3 is not None
    # the published parameter counts: 1.24B and 3.21B
    assert dims1.parameters() == pytest.approx(1.236e9, rel=1e-3)
    assert dims3.parameters() == pytest.approx(3.213e9, rel=1e-3)
    modules = ["q_proj", "v_proj", "output_proj"]
    merged = checkpoint_size(tmp_path / M1, lookup(M1).checkpoint_files, 64, modules, False, False, "bf16")
    assert merged is not None
    # torchtune logs "Model checkpoint of size 2.30 GiB" for the 1B merged save: the weights on disk (2.30 GiB)
    assert merged.weights_on_disk_gib == pytest.approx(2.30, abs=0.005)
    assert 2.30 < merged.gib < 2.40 and "weight files on disk" in merged.basis
    # adapters only: rank x (in + out) per projection and layer, written twice (.pt and PEFT .safetensors)
    a4 = checkpoint_size(tmp_path / M1, lookup(M1).checkpoint_files, 4, modules, False, True, "bf16")
    a64 = checkpoint_size(tmp_path / M1, lookup(M1).checkpoint_files, 64, modules, False, True, "bf16")
    assert a4 is not None and a64 is not None
    adapter64 = 16 * 64 * ((2048 + 2048) + (2048 + 512) + (2048 + 2048)) * 2 * 2 / GIB
    assert a64.gib - a4.gib == pytest.approx(adapter64 * 60 / 64, rel=1e-6)
    assert a64.gib < 0.1 and "rank 64" in a64.basis


def test_a_pruned_prior_does_not_collapse_the_disk_estimate(tmp_path: Path) -> None:
    """The della case: placeholder epoch_* folders (du ~0) beside a log that says 2.30 GiB saved."""
    plan = build_plan(ExperimentDesign.model_validate(della_design(tmp_path)), date="2026-12-01")
    e1 = plan.estimates.per_model[M1].checkpoint_gib_per_epoch
    assert e1.value == pytest.approx(2.38)  # 2.30 GiB model + 2 x 0.04 GiB adapter, as torchtune logged
    assert "torchtune's 'checkpoint of size' lines" in e1.source
    # the 3B has no log of its own: computed from its own weights, not scaled from the 1B by a table
    e3 = plan.estimates.per_model[M3].checkpoint_gib_per_epoch
    assert e3.source.startswith("computed: merged model: the weight files on disk (5.98 GiB)")
    assert 5.98 < e3.value < 6.1
    per_run = {r.run: r.disk_gib for r in plan.estimates.runs.values()}
    assert per_run[f"{M1}_rank4"] == pytest.approx(2 * 2.38 + 0.01 * len(plan.run(f"{M1}_rank4").evaluations))


def test_a_placeholder_folder_without_log_lines_is_set_aside(tmp_path: Path) -> None:
    data = della_design(tmp_path)
    log = next((tmp_path / "prior_runs").rglob("slurm-*.out"))
    log.write_text("\n".join(line for line in log.read_text().splitlines() if "checkpoint of size" not in line))
    plan = build_plan(ExperimentDesign.model_validate(data), date="2026-12-01")
    e1 = plan.estimates.per_model[M1].checkpoint_gib_per_epoch
    assert e1.source.startswith("computed: merged model") and e1.value > 2.3
    note = next(n for n in plan.estimates.notes if "size of the epoch_* folders beside" in n)
    assert "says 0.00 GiB per epoch" in note and "set aside" in note


def test_a_real_size_measurement_is_used(tmp_path: Path) -> None:
    data = della_design(tmp_path)
    log = next((tmp_path / "prior_runs").rglob("slurm-*.out"))
    log.write_text("\n".join(line for line in log.read_text().splitlines() if "checkpoint of size" not in line))
    for epoch in log.parent.glob("epoch_*"):
        with (epoch / "model-00001-of-00001.safetensors").open("r+b") as handle:
            handle.truncate(int(2.5 * GIB))  # sparse: a merged save that was kept
    plan = build_plan(ExperimentDesign.model_validate(data), date="2026-12-01")
    e1 = plan.estimates.per_model[M1].checkpoint_gib_per_epoch
    assert e1.source.startswith("size of the epoch_* folders beside") and e1.value == pytest.approx(2.5, abs=0.01)


@pytest.mark.real_disk
def test_a_sweep_that_overflows_the_disk_is_refused(tmp_path: Path) -> None:
    """Many runs x 2.38 GiB x 2 epochs against the free space of this machine's disk: refused, not approved."""
    free_gib = shutil.disk_usage(tmp_path).free / GIB
    ranks = list(range(1, int(free_gib / (2 * 2.38 + 2 * 6.0)) + 3))  # just more than fits
    with pytest.raises(DesignError) as error:
        build_plan(ExperimentDesign.model_validate(della_design(tmp_path, ranks=ranks)), date="2026-12-01")
    assert "Not enough disk" in str(error.value) and "paths.output_dir" in str(error.value)


def test_a_cuda_slurm_design_without_job_env_is_refused_with_the_fix(tmp_path: Path) -> None:
    data = della_design(tmp_path)
    data["cluster"] = {k: v for k, v in data["cluster"].items() if k != "job_env"}
    with pytest.raises(DesignError) as error:
        build_plan(ExperimentDesign.model_validate(data), date="2026-12-01")
    [problem] = error.value.problems
    assert problem.field == "cluster.job_env" and "use_orchestrator_env: true" in problem.message
    data["cluster"]["use_orchestrator_env"] = True  # meant: planned
    assert build_plan(ExperimentDesign.model_validate(data), date="2026-12-01").runs

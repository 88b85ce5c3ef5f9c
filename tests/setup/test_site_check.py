"""The site check (tasks/setup/_site_check.py): real check jobs on the local backend, in real job environments.

Each check job is the generated `site_check.slurm`, run by the local backend as sbatch would:
the jobs' preflight in the job's Python, then `tasks/core/site_probe.py` loading every planned
model's config and tokenizers. Nothing is faked but the cluster (the local runner).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.backends import select_backend
from tasks.model import Plan, SiteCheckLayout, cluster_settings, parse_design
from tasks.model._cluster import ClusterSettings
from tasks.planning import build_plan, render_plan_markdown
from tasks.setup import recent_pass, run_site_check, site_shapes
from tests.support.fakesite import FakeSite

CPU_LOCAL = {"backend": "local", "device": "cpu", "mem": "2G", "eval_mem": "2G"}


def _plan(site: FakeSite, **cluster: object) -> tuple[Plan, ClusterSettings]:
    plan = build_plan(parse_design(site.design(cluster={**CPU_LOCAL, **cluster}), base=site.root), date="2026-01-02")
    return plan, cluster_settings(plan.design)


def _check(plan: Plan, cluster: ClusterSettings, timeout_s: float = 180):
    backend = select_backend(cluster, SiteCheckLayout(plan.group_dir.parent).local_jobs)
    return run_site_check(plan, cluster, backend, timeout_s=timeout_s, poll_s=0.5)


def test_shapes_merge_when_finetunes_and_evaluations_ask_the_same(fake_site):
    plan, cluster = _plan(fake_site)
    assert [s.stages for s in site_shapes(plan, cluster)] == [["finetune", "eval"]]

    plan, cluster = _plan(fake_site, device="cuda", eval_partition="mig", eval_gpu_type="3g.40gb", constraint="a100|h100")
    finetune, evaluation = site_shapes(plan, cluster)
    assert (finetune.stages, finetune.partition, finetune.gpus, finetune.constraint) == (["finetune"], None, 1, "a100|h100")
    assert (evaluation.stages, evaluation.partition, evaluation.gpu_type, evaluation.mem) == (["eval"], "mig", "3g.40gb", "2G")
    assert "3g.40gb" in evaluation.label and "mig" in evaluation.label


def test_a_good_site_passes_and_the_pass_is_remembered(fake_site):
    plan, cluster = _plan(fake_site)
    report = _check(plan, cluster)

    assert report.passed, report.failures()
    (shape,) = report.shapes
    assert shape.packages["torchtune"] == "0.6.1" and shape.packages["torchao"] == "0.15.0"
    assert shape.python and shape.host and "output_dir" in shape.free_gib
    assert [m.name for m in shape.models] == ["Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"]
    assert all(m.ok and "torchtune tokenizer" in m.detail and "HF tokenizer" in m.detail for m in shape.models)
    assert (shape.folder / f"slurm-{shape.job_id}.out").read_text().count("sweepflow site-check: ok:") == 1
    assert not plan.group_dir.exists()  # the run group is written only after approval

    markdown = render_plan_markdown(plan.model_copy(update={"site_check": report}))
    section = markdown[markdown.index("## Site Check"):markdown.index("## Quick Reference")]
    assert "**Passed**" in section and "Llama-3.2-3B-Instruct: config.json matches" in section

    again = recent_pass(plan, cluster, "local")
    assert again is not None and again.reused_from == report.checked_at and again.passed
    assert recent_pass(plan, cluster, "local", now=datetime.now(UTC) + timedelta(days=8)) is None
    assert recent_pass(plan, cluster, "slurm") is None  # another backend is another site
    other_env = cluster.model_copy(update={"env_setup": ["export SOMETHING=else"]})
    assert recent_pass(plan, other_env, "local") is None


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real virtual environment with nothing installed (no torch, no torchtune)."""
    folder = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    return folder


def test_a_job_environment_without_the_packages_fails_and_voids_an_earlier_pass(fake_site, bare_venv):
    plan, cluster = _plan(fake_site)
    assert _check(plan, cluster).passed
    assert recent_pass(plan, cluster, "local") is not None

    bare = cluster.model_copy(update={"job_env": {"venv": str(bare_venv)}})
    bare = ClusterSettings.model_validate(bare.model_dump())
    report = _check(plan, bare)

    assert not report.passed
    (shape,) = report.shapes
    assert shape.outcome == "failed"
    assert "torchtune is not installed (sweepflow needs torchtune==0.6.1)" in shape.message
    assert "torch cannot be imported" in shape.message and str(bare_venv) in shape.message
    assert recent_pass(plan, bare, "local") is None


def test_a_tokenizer_the_job_cannot_load_names_the_model_and_folder(fake_site):
    plan, cluster = _plan(fake_site)
    model_dir = fake_site.root / "models" / "Llama-3.2-3B-Instruct"
    (model_dir / "tokenizer.json").unlink()  # gone after planning (or never visible on the compute node)

    report = _check(plan, cluster)

    (shape,) = report.shapes
    assert shape.outcome == "failed"
    assert shape.message.startswith("Llama-3.2-3B-Instruct: Hugging Face tokenizer of ")
    assert str(model_dir) in shape.message
    assert {m.name: m.ok for m in shape.models} == {"Llama-3.2-1B-Instruct": True, "Llama-3.2-3B-Instruct": False}
    assert "FAILED" in render_plan_markdown(plan.model_copy(update={"site_check": report}))


def test_a_check_that_does_not_finish_in_time_is_cancelled_and_reported(fake_site):
    plan, cluster = _plan(fake_site)
    report = _check(plan, cluster, timeout_s=0)

    (shape,) = report.shapes
    assert shape.outcome == "timed out"
    assert "not finished within 0 min" in shape.message and "cancelled" in shape.message
    assert recent_pass(plan, cluster, "local") is None


def test_a_registered_task_must_resolve_in_the_job_environment(fake_site, tmp_path, monkeypatch):
    """The orchestrator resolves the fixture task package (plan-time check); the job's Python must too."""
    import shutil

    from inspect_ai._util.entrypoints import clear_entry_points_state

    site = tmp_path / "pkgs" / "site-packages"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "task_package", site)
    monkeypatch.syspath_prepend(str(site))
    clear_entry_points_state()
    design = fake_site.design(cluster=CPU_LOCAL)
    design["evaluation"]["tasks"] = [{
        "name": "caps", "inspect_task": "sweepflow_fixture_tasks/capitals",
        "args": {"data_file": "${dataset}", "instructions": "${system_prompt}"},
    }]
    plan = build_plan(parse_design(design, base=fake_site.root), date="2026-01-02")

    report = _check(plan, cluster_settings(plan.design))  # the job's PYTHONPATH lacks the package
    (shape,) = report.shapes
    assert shape.outcome == "failed"
    assert shape.message.startswith("sweepflow_fixture_tasks/capitals: inspect has no registered task of this name")

    with_package = cluster_settings(plan.design).model_copy(update={"env_setup": [f"export PYTHONPATH={site}"]})
    report = _check(plan, with_package)
    assert report.passed, report.failures()
    (shape,) = report.shapes
    log = (shape.folder / f"slurm-{shape.job_id}.out").read_text()
    assert "1 registered task(s) resolve (sweepflow_fixture_tasks/capitals)" in log
    clear_entry_points_state()

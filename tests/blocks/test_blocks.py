"""Blocks (site profiles) and site resolution, without a Prefect server."""

from __future__ import annotations

import pytest

from blocks import ExperimentPaths, SlurmCluster
from blocks.cluster import profile_fields
from blocks.resolve import cluster_profile, resolve_site
from tasks.core._errors import DesignError
from tasks.model._cluster import ClusterSettings
from tasks.model._design import PathsSpec
from tasks.model._design_file import parse_design


def _design(tmp_path, **changes):
    data = {
        "name": "exp",
        "question": "q?",
        "task": "t",
        "models": ["Llama-3.2-1B-Instruct"],
        "dataset": {"path": "data.json"},
        "evaluation": {"tasks": [{"name": "cap", "script": "eval.py"}]},
        "paths": {"models_dir": "models", "output_dir": "out"},
    }
    data.update(changes)
    return parse_design(data, source="test", base=tmp_path)


def test_block_slugs():
    assert SlurmCluster.get_block_type_slug() == "slurm-cluster"
    assert ExperimentPaths.get_block_type_slug() == "sweepflow-paths"


def test_cluster_block_mirrors_cluster_settings():
    assert set(profile_fields()) == set(ClusterSettings.model_fields)
    defaults = SlurmCluster().profile()
    assert defaults == ClusterSettings().model_dump(mode="json")
    assert defaults["max_queued_jobs"] == 20 and defaults["submit_stagger_seconds"] == 0.5
    assert defaults["notify_block"] is None and defaults["stall_hours"] == 6.0


def test_cluster_block_rejects_bad_values_clearly():
    with pytest.raises(ValueError) as info:
        SlurmCluster(time_limit="4 hours", mem="64 GB")
    text = str(info.value)
    assert "time_limit" in text and "04:00:00" in text
    assert "mem" in text


def test_paths_block_needs_absolute_paths(tmp_path):
    block = ExperimentPaths(models_dir=tmp_path / "m", output_dir=str(tmp_path / "o"), prior_runs=str(tmp_path / "p"))
    assert block.prior_runs == [tmp_path / "p"]
    with pytest.raises(ValueError, match="absolute"):
        ExperimentPaths(models_dir="models", output_dir="/o")


def test_resolve_replaces_block_names(tmp_path):
    design = _design(tmp_path, paths="site-paths", cluster="della")
    paths = ExperimentPaths(models_dir=tmp_path / "m", output_dir=tmp_path / "o", prior_runs=[tmp_path / "old"])
    cluster = SlurmCluster(account="lab", partition="gpu", env_setup=["module load cuda"])
    resolved = resolve_site(design, load_paths={"site-paths": paths}.__getitem__, load_cluster={"della": cluster}.__getitem__)
    assert resolved.paths == PathsSpec(models_dir=tmp_path / "m", output_dir=tmp_path / "o", prior_runs=[tmp_path / "old"])
    assert resolved.cluster["account"] == "lab" and resolved.cluster["env_setup"] == ["module load cuda"]
    ClusterSettings.model_validate(resolved.cluster)


def test_resolve_fills_inline_cluster_defaults(tmp_path):
    resolved = resolve_site(_design(tmp_path, cluster={"partition": "gpu", "max_queued_jobs": 5}))
    assert resolved.cluster["partition"] == "gpu"
    assert resolved.cluster["max_queued_jobs"] == 5
    assert resolved.cluster["time_limit"] is None and resolved.cluster["time_margin"] == 1.5  # limits from estimates
    assert isinstance(resolved.paths, PathsSpec)


def test_resolve_without_blocks_is_identity(tmp_path):
    design = _design(tmp_path)
    assert resolve_site(design) is design


def test_inline_cluster_problems_name_the_field(tmp_path):
    with pytest.raises(DesignError) as info:
        resolve_site(_design(tmp_path, cluster={"partiton": "gpu", "time_limit": "soon"}))
    fields = {p.field for p in info.value.problems}
    assert fields == {"cluster.partiton", "cluster.time_limit"}
    assert "unknown cluster field" in str(info.value)


def test_missing_block_names_field_and_block(tmp_path, monkeypatch):
    def missing(name, *args, **kwargs):
        raise ValueError(f"Unable to find block document named {name} for block type sweepflow-paths")

    monkeypatch.setattr(ExperimentPaths, "load", missing)
    monkeypatch.setattr(SlurmCluster, "load", missing)
    with pytest.raises(DesignError) as info:
        resolve_site(_design(tmp_path, paths="nope", cluster="gone"))
    problems = {p.field: p.message for p in info.value.problems}
    assert "'nope'" in problems["paths"] and "sweepflow-paths" in problems["paths"]
    assert "'gone'" in problems["cluster"] and "slurm-cluster" in problems["cluster"]


def test_cluster_profile_roundtrip():
    profile = cluster_profile({"account": "lab", "extra_sbatch": ["--mail-type=END"]})
    assert SlurmCluster(**profile).profile() == profile


def test_notify_block_is_a_saved_block_name():
    assert ClusterSettings(notify_block="slack-webhook/lab-alerts").notify_block == "slack-webhook/lab-alerts"
    for bad in ("lab-alerts", "Slack/Lab", "slack-webhook/lab alerts", "a/b/c"):
        with pytest.raises(ValueError, match="block type slug"):
            ClusterSettings(notify_block=bad)
    with pytest.raises(ValueError, match=r"notify_block\n.*'lab-alerts' is not a saved block's name"):
        SlurmCluster(notify_block="lab-alerts")
    with pytest.raises(ValueError, match="stall_hours"):
        SlurmCluster(stall_hours=0)

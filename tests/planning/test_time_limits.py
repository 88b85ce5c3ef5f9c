"""Per-job time limits from the estimates: margin, rounding, the partition's cap, explicit limits."""

from __future__ import annotations

from pathlib import Path

from tasks.model._cluster import ClusterSettings
from tasks.planning._time_limits import finetune_time_limit, time_limit, time_limit_warnings
from tests.support.setup_groups import plan_of, planned


def test_estimate_times_margin_rounded_up_to_five_minutes() -> None:
    assert time_limit(12.5, None, 1.5, None, "ft", "finetune").limit == "00:20:00"  # 18.75 -> 20
    assert time_limit(2.0, None, 1.5, None, "ev", "eval").limit == "00:10:00"  # at least 10 minutes
    assert time_limit(240.0, None, 1.5, None, "ft", "finetune").limit == "06:00:00"
    assert time_limit(None, None, 1.5, None, "ft", "finetune").limit == "04:00:00"  # no estimate


def test_explicit_limit_wins_and_warns_when_below_the_estimate() -> None:
    short = time_limit(12.5, "00:05:00", 1.5, None, "fine-tune r", "finetune")
    assert (short.limit, short.source) == ("00:05:00", "cluster settings")
    assert short.warning == "fine-tune r: time limit 00:05:00 is below its estimate of 12 min"
    assert time_limit(12.5, "1:00:00", 1.5, None, "fine-tune r", "finetune").warning is None


def test_partition_cap() -> None:
    capped = time_limit(300.0, None, 1.5, "06:00:00", "fine-tune 8b", "finetune")
    assert (capped.limit, capped.warning) == ("06:00:00", None)  # 7.5 h wanted, 5 h estimated: fits under 6 h
    assert "capped by max_time_limit" in capped.source
    below = time_limit(480.0, None, 1.5, "06:00:00", "fine-tune 8b", "finetune")
    assert below.warning == "fine-tune 8b: the partition's limit 06:00:00 is below its estimate of 480 min"


def test_plan_and_scripts_use_each_runs_limit(fake_site, tmp_path: Path) -> None:
    design = fake_site.design(name="limits", cluster={"time_limit": "00:01:00", "max_time_limit": "2-00:00:00"})
    group = planned(design, base=tmp_path)
    plan = plan_of(group)
    cluster = ClusterSettings(time_limit="00:01:00")
    run = plan.finetune_runs[0]
    assert finetune_time_limit(plan, run, cluster).limit == "00:01:00"
    warnings = time_limit_warnings(plan, cluster)
    assert len(warnings) == len(plan.finetune_runs) and "time limit 00:01:00 is below its estimate" in warnings[0]
    text = (group / "runs_plan.md").read_text()
    assert f"| {run.name} | fine-tune | 00:01:00 | cluster settings (**below the estimate**) |" in text
    assert "**Warning**: fine-tune " in text


def test_explicit_limit_above_the_partitions_maximum_is_refused_naming_both_fields() -> None:
    from tasks.core._errors import DesignError
    from tasks.model._cluster import cluster_settings
    from tasks.model._design import ExperimentDesign
    from tests.support.fakesite import design

    base = design(Path("/nonexistent"))
    data = {**base, "cluster": {"eval_time_limit": "00:45:00", "max_time_limit": "00:10:00"}}
    try:
        cluster_settings(ExperimentDesign.model_validate(data))
    except DesignError as error:
        [problem] = error.problems
        assert problem.field == "cluster"
        assert "eval_time_limit 00:45:00 is above max_time_limit 00:10:00" in problem.message
    else:
        raise AssertionError("an eval_time_limit above max_time_limit was accepted")
    ok = {**base, "cluster": {"time_limit": "1-00:00:00", "max_time_limit": "1-00:00:00"}}
    assert cluster_settings(ExperimentDesign.model_validate(ok)).time_limit == "1-00:00:00"

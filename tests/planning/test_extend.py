"""Extending a run group: classification, field-level diffs, refusals, the merged plan, delivery.

Plans are the seed's 2x2 example built by hand (tests/support/seed_plan.py): 2 models x ranks 4/64,
two controls, two tasks; variants change one field of its design.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core._errors import DesignError
from tasks.model._cluster import cluster_settings
from tasks.model._layout import SETUP_BEGIN, SETUP_END
from tasks.model._plan_file import load_plan
from tasks.model._status_file import StatusStore
from tasks.planning._deliver import deliver_plan
from tasks.planning._design_diff import design_changes
from tasks.planning._extend import extension_status, plan_extension, prepare_extension
from tasks.planning._time_limits import eval_time_limit, finetune_time_limit
from tests.support.seed_plan import NOW, build_plan, design_data

NAME = "cap_8L_llama32_lora_comparison_2025-10-18"
S, L = "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"
LATER = "2025-10-20T08:00:00+00:00"


def _plan(tmp_path: Path, **changes):
    return build_plan(design_data(**changes), group_dir=tmp_path / "experiments" / NAME)


def _training(**changes):
    return {**design_data()["training"], **changes}


def _evaluation(**changes):
    return {**design_data()["evaluation"], **changes}


def test_no_group_is_new_the_recorded_design_is_same(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert plan_extension(None, plan, None, NOW).kind == "new"
    same = plan_extension(plan, plan.model_copy(update={"created": LATER}), None, LATER)
    assert same.kind == "same" and same.extension is None and same.plan.created == plan.created


def test_a_new_level_adds_runs_and_names_the_field(tmp_path: Path) -> None:
    old, new = _plan(tmp_path), _plan(tmp_path, factors={"lora_rank": [4, 64, 16]})
    ext = plan_extension(old, new, None, LATER)
    assert ext.kind == "extension" and ext.extension is not None
    assert ext.extension.new_runs == [f"{S}_rank16", f"{L}_rank16"]
    assert sorted(ext.extension.unchanged_runs) == sorted(r.name for r in old.runs)
    assert ext.extension.dropped_runs == []
    assert [(c.field, c.old, c.new) for c in ext.extension.changes] == [("factors.lora_rank[rank16]", "-", "16")]
    merged = ext.plan
    assert merged.run_group == old.run_group and merged.created == old.created
    assert merged.design_hash == new.design_hash and merged.design_hashes == {old.design_hash, new.design_hash}
    for run in old.runs:  # every existing run exactly as recorded, its estimate too
        assert merged.run(run.name) == run
        assert merged.estimates.runs[run.name] == old.estimates.runs[run.name]
    assert f"2 new run(s) ({S}_rank16, {L}_rank16), 6 unchanged, 0 dropped" in ext.delta_text()


def test_a_removed_level_drops_its_runs_with_the_reason(tmp_path: Path) -> None:
    old, new = _plan(tmp_path), _plan(tmp_path, factors={"lora_rank": [4]})
    ext = plan_extension(old, new, None, LATER)
    assert ext.extension is not None and ext.extension.dropped_runs == [f"{S}_rank64", f"{L}_rank64"]
    assert [d.run.name for d in ext.plan.dropped_runs] == [f"{S}_rank64", f"{L}_rank64"]
    assert ext.plan.dropped_runs[0].reason == (
        "dropped by the extension of 2025-10-20: its level was removed (factors.lora_rank[rank64])")
    assert f"{S}_rank64" not in {r.name for r in ext.plan.runs}
    assert {r.name for r in ext.plan.with_dropped().runs} == {r.name for r in old.runs}


def test_one_more_replicate_keeps_the_existing_run_as_replicate_1(tmp_path: Path) -> None:
    old, new = _plan(tmp_path), _plan(tmp_path, replicates=2)
    ext = plan_extension(old, new, None, LATER)
    assert ext.extension is not None
    assert ext.extension.new_runs == [f"{m}_rank{r}_rep2" for m in (S, L) for r in (4, 64)]
    assert ext.extension.dropped_runs == []
    assert f"{S}_rank4" in {r.name for r in ext.plan.runs}  # not renamed to _rep1: its files stay where they are
    rep2 = ext.plan.run(f"{S}_rank4_rep2")
    assert rep2.cell_name == ext.plan.run(f"{S}_rank4").cell_name and rep2.params.seed == 1042


def test_a_new_task_is_evaluation_only_on_existing_checkpoints(tmp_path: Path) -> None:
    tasks = design_data()["evaluation"]["tasks"]
    extra = {**tasks[0], "name": "capitalization_again"}
    old, new = _plan(tmp_path), _plan(tmp_path, evaluation=_evaluation(tasks=[*tasks, extra]))
    ext = plan_extension(old, new, None, LATER)
    assert ext.extension is not None and ext.extension.new_runs == []
    assert f"{S}_rank4/capitalization_again_epoch_1" in ext.extension.new_evaluations
    assert [c.field for c in ext.extension.changes] == ["evaluation.tasks[capitalization_again]"]
    assert [j.key for j in ext.plan.run(f"{S}_rank4").evaluations][-1] == "capitalization_again_epoch_1"


def test_a_new_task_lengthens_the_kept_runs_evaluation_jobs_time_limit(tmp_path: Path) -> None:
    """The checkpoint's job now runs one more task: its limit covers it (the fine-tune's stays as recorded)."""
    tasks = design_data()["evaluation"]["tasks"]
    extra = {**tasks[0], "name": "capitalization_again"}
    old, new = _plan(tmp_path), _plan(tmp_path, evaluation=_evaluation(tasks=[*tasks, extra]))
    merged = plan_extension(old, new, None, LATER).plan
    cluster = cluster_settings(merged.design)
    for run in old.runs:
        before, after = old.estimates.runs[run.name], merged.estimates.runs[run.name]
        assert after.eval_minutes == new.estimates.runs[run.name].eval_minutes
        assert after.eval_minutes > before.eval_minutes or run.is_control  # (controls: the tasks they run)
        assert after.train_minutes == before.train_minutes and after.batch_size == before.batch_size
        limit = eval_time_limit(merged, merged.run(run.name), cluster).limit
        assert limit == eval_time_limit(new, new.run(run.name), cluster).limit
        if not run.is_control:
            assert finetune_time_limit(merged, merged.run(run.name), cluster) == finetune_time_limit(old, run, cluster)


@pytest.mark.parametrize(("changes", "field"), [
    ({"training": _training(learning_rate=0.001)}, "training.learning_rate"),
    ({"dataset": {**design_data()["dataset"], "path": "/elsewhere/words.json"}}, "dataset.path"),
    ({"factors": {"lora_rank": {"rank4": 8, "rank64": 64}}}, "factors.lora_rank[rank4]"),
    ({"factors": {"lora_rank": [4, 64], "learning_rate": [1e-4, 3e-4]}}, "factors.learning_rate"),
    ({"evaluation": _evaluation(max_tokens=64)}, "evaluation.max_tokens"),
    ({"gpu": {"count": 2, "memory_gb": 80}}, "gpu.count"),
])
def test_a_change_to_what_existing_runs_mean_is_refused_naming_the_field(tmp_path: Path, changes, field) -> None:
    old, new = _plan(tmp_path), _plan(tmp_path, **changes)
    with pytest.raises(DesignError) as info:
        plan_extension(old, new, None, LATER)
    fields = [p.field for p in info.value.problems]
    assert field in fields, info.value
    assert all("new run group" in p.message for p in info.value.problems)


def test_a_changed_task_definition_is_refused() -> None:
    old = design_data()
    tasks = [dict(t) for t in old["evaluation"]["tasks"]]
    tasks[1]["script"] = "/elsewhere/eval.py"
    new = design_data(evaluation=_evaluation(tasks=tasks))
    changes = design_changes(build_plan(old).design, build_plan(new).design)
    assert [c.field for c in changes] == ["evaluation.tasks[reasoning].script"]
    with pytest.raises(DesignError, match=r"evaluation.tasks\[reasoning\].script"):
        plan_extension(build_plan(old), build_plan(new), None, LATER)


def test_descriptive_and_scheduling_fields_are_allowed(tmp_path: Path) -> None:
    old = _plan(tmp_path)
    new = _plan(tmp_path, question="Does rank matter, really?", factors={"lora_rank": [4, 64, 16]},
                gpu={"count": 1, "memory_gb": 40})
    ext = plan_extension(old, new, None, LATER)
    assert ext.extension is not None
    assert {c.field for c in ext.extension.changes} == {"question", "gpu.memory_gb", "factors.lora_rank[rank16]"}


def test_dropping_a_queued_run_is_refused(tmp_path: Path) -> None:
    old = _plan(tmp_path)
    group = deliver_plan(old, NOW)
    StatusStore(group / "runs_status.yaml").update(lambda s: s.stage(f"{S}_rank64").mark("running", job_id="7"))
    with pytest.raises(DesignError, match=f"{S}_rank64/finetune is queued or running"):
        deliver_plan(_plan(tmp_path, factors={"lora_rank": [4]}), LATER)


def test_a_run_submitted_while_the_extension_was_planned_is_not_dropped(tmp_path: Path) -> None:
    """The in-flight check is made again under the status lock: a job submitted meanwhile is never orphaned."""
    old = _plan(tmp_path)
    group = deliver_plan(old, NOW)
    store = StatusStore(group / "runs_status.yaml")
    ext = plan_extension(old, _plan(tmp_path, factors={"lora_rank": [4]}), store.read(), LATER)
    assert ext.extension is not None
    store.update(lambda s: s.stage(f"{S}_rank64").mark("submitted", job_id="7"))  # launch-runs, meanwhile
    with pytest.raises(DesignError, match=f"{S}_rank64/finetune is queued or running"):
        store.update(extension_status(ext.plan, ext.extension, LATER), force=True)
    assert store.read().stage(f"{S}_rank64").status == "submitted"


def _finish(group: Path, run: str) -> None:
    def done(status):
        status.stage(run).mark("completed", now=NOW, job_id="11")
        for stage in status.runs[run].evaluations.values():
            stage.mark("completed", now=NOW, job_id="12")
    StatusStore(group / "runs_status.yaml").update(done)


def test_delivering_an_extension(tmp_path: Path) -> None:
    old = _plan(tmp_path)
    group = deliver_plan(old, NOW)
    _finish(group, f"{S}_rank4")
    _finish(group, f"{S}_rank64")
    md = group / "runs_plan.md"
    setup_section = f"{SETUP_BEGIN}\n## Setup\nwhat setup wrote\n{SETUP_END}"
    md.write_text(md.read_text() + "\n" + setup_section + "\n")
    grown = _plan(tmp_path, factors={"lora_rank": [4, 16]}, replicates=1)
    deliver_plan(grown, LATER)

    status = StatusStore(group / "runs_status.yaml").read()
    assert status.stage(f"{S}_rank4").status == "completed"  # finished work untouched
    assert status.stage(f"{S}_rank4").job_id == "11"
    assert status.stage(f"{S}_rank16").status == "pending"  # new runs join the same status
    assert status.stage(f"{S}_rank64").status == "dropped"
    assert status.stage(f"{S}_rank64").note == "was completed"
    assert status.stage(f"{L}_rank64").status == "dropped"
    assert "its level was removed (factors.lora_rank[rank64])" in (status.stage(f"{L}_rank64").reason or "")
    text = md.read_text()
    assert "## Extensions" in text and "`factors.lora_rank[rank16]`: - → 16" in text
    assert text.count(SETUP_BEGIN) == 1 and text.rstrip().endswith(setup_section)  # setup's section kept
    recorded = load_plan(group)
    assert recorded.design_hash == grown.design_hash and len(recorded.extensions) == 1
    assert [d.run.name for d in recorded.dropped_runs] == [f"{S}_rank64", f"{L}_rank64"]

    # the same extended design again: a no-op
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in group.iterdir() if p.is_file()}
    deliver_plan(grown.model_copy(update={"created": "2025-10-21T00:00:00+00:00"}), "2025-10-21T00:00:00+00:00")
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in group.iterdir() if p.is_file()} == before

    # adding the dropped level back restores what had finished
    deliver_plan(_plan(tmp_path, factors={"lora_rank": [4, 16, 64]}), "2025-10-22T00:00:00+00:00")
    status = StatusStore(group / "runs_status.yaml").read()
    assert status.stage(f"{S}_rank64").status == "completed" and status.stage(f"{L}_rank64").status == "pending"
    assert load_plan(group).dropped_runs == []


def test_a_task_added_back_with_another_definition_is_scored_again(tmp_path: Path) -> None:
    """Out of the design, a task's definition can change unchecked: its earlier scores are not restored."""
    kept, removed = design_data()["evaluation"]["tasks"]
    group = deliver_plan(_plan(tmp_path), NOW)
    _finish(group, f"{S}_rank4")
    deliver_plan(_plan(tmp_path, evaluation=_evaluation(tasks=[kept])), LATER)
    key = f"{removed['name']}_epoch_1"
    assert StatusStore(group / "runs_status.yaml").read().stage(f"{S}_rank4", key).status == "dropped"
    changed = {**removed, "args": {"shots": 5}}
    deliver_plan(_plan(tmp_path, evaluation=_evaluation(tasks=[kept, changed])), "2025-10-21T00:00:00+00:00")
    status = StatusStore(group / "runs_status.yaml").read()
    assert status.stage(f"{S}_rank4").status == "completed"  # the fine-tune is what it was
    assert status.stage(f"{S}_rank4", f"{kept['name']}_epoch_1").status == "completed"  # never dropped
    stage = status.stage(f"{S}_rank4", key)
    assert stage.status == "pending"  # scored again under its definition now, not the earlier one's result
    assert "added back" in (stage.reason or "")


def test_a_run_re_added_after_its_task_was_redefined_is_scored_again(tmp_path: Path) -> None:
    """Dropped run, then its task removed and added back with another definition, then the run re-added.

    The run was out of the design when the task came back, so that extension could not reopen its
    evaluation; its earlier score (of the old definition) must not come back with the run.
    """
    kept, removed = design_data()["evaluation"]["tasks"]
    changed = {**removed, "args": {"shots": 5}}
    group = deliver_plan(_plan(tmp_path), NOW)
    _finish(group, f"{S}_rank64")
    deliver_plan(_plan(tmp_path, factors={"lora_rank": [4]}), LATER)  # rank64 out (completed: was completed)
    deliver_plan(_plan(tmp_path, factors={"lora_rank": [4]}, evaluation=_evaluation(tasks=[kept])),
                 "2025-10-21T00:00:00+00:00")
    deliver_plan(_plan(tmp_path, factors={"lora_rank": [4]}, evaluation=_evaluation(tasks=[kept, changed])),
                 "2025-10-22T00:00:00+00:00")
    key = f"{removed['name']}_epoch_1"
    assert StatusStore(group / "runs_status.yaml").read().stage(f"{S}_rank64", key).status == "dropped"
    deliver_plan(_plan(tmp_path, evaluation=_evaluation(tasks=[kept, changed])), "2025-10-23T00:00:00+00:00")
    status = StatusStore(group / "runs_status.yaml").read()
    assert status.stage(f"{S}_rank64").status == "completed"  # the fine-tune is what it was
    assert status.stage(f"{S}_rank64", f"{kept['name']}_epoch_1").status == "completed"  # same definition
    stage = status.stage(f"{S}_rank64", key)
    assert stage.status == "pending" and "added back" in (stage.reason or "")


def test_extend_only_without_a_date_finds_the_newest_group(tmp_path: Path) -> None:
    old = _plan(tmp_path)
    deliver_plan(old, NOW)
    today = old.model_copy(update={"run_group": "cap_8L_llama32_lora_comparison_2025-11-01",
                                   "group_dir": old.group_dir.parent / "cap_8L_llama32_lora_comparison_2025-11-01"})
    assert prepare_extension(today, LATER, extend_only=True, date_given=False).kind == "same"
    with pytest.raises(DesignError, match=r"no run group .* to extend"):
        prepare_extension(today, LATER, extend_only=True, date_given=True)
    assert prepare_extension(today, LATER).kind == "new"

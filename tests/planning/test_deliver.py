"""Delivering a plan: all-or-nothing for a new group, idempotent, never resets progress."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

import tasks.planning._deliver as deliver
from tasks.core._errors import DesignError
from tasks.core._files import FileFormatError
from tasks.model._layout import STATE_DIR as CACHE_DIR
from tasks.model._layout import GroupLayout
from tasks.model._plan_file import load_plan
from tasks.model._status import initial_status
from tasks.model._status_file import StatusStore, dump_status
from tasks.planning._deliver import deliver_plan
from tasks.planning._plan_markdown import render_plan_markdown
from tests.support.seed_plan import NOW, build_plan, design_data

NAME = "cap_8L_llama32_lora_comparison_2025-10-18"
FILES = ["experiment.yaml", "runs_plan.md", "runs_status.yaml"]


def _plan(tmp_path: Path, **changes):
    data = design_data(**changes) if changes else None
    return build_plan(data, group_dir=tmp_path / "experiments" / NAME)


def _listing(root: Path) -> list[str]:
    """Every path under root (hidden staging folders included), less sweepflow's `.sweepflow/` caches."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if CACHE_DIR not in p.relative_to(root).parts)


def _names(group: Path) -> list[str]:
    return sorted(p.name for p in group.iterdir() if p.name != CACHE_DIR)


def test_new_group_gets_all_three_files(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    group = deliver_plan(plan, NOW)
    assert group == plan.group_dir
    assert _names(group) == FILES
    assert _listing(tmp_path / "experiments") == [NAME] + [f"{NAME}/{f}" for f in FILES]  # no staging left
    assert (group / "runs_plan.md").read_text() == render_plan_markdown(plan)
    assert (group / "runs_status.yaml").read_text() == dump_status(initial_status(plan), NOW)
    text = (group / "experiment.yaml").read_text()
    assert text.startswith("# experiment.yaml - machine-readable plan of run group")
    assert "read by the setup-experiment, launch-runs, sync-status" in text
    assert yaml.safe_load(text)["design_hash"] == plan.design_hash


def test_load_plan_round_trips(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    deliver_plan(plan, NOW)
    loaded = load_plan(plan.group_dir)
    assert loaded == plan
    assert [j.key for j in loaded.run("Llama-3.2-1B-Instruct_base").evaluations] == ["capitalization_8L"]


def test_same_design_again_writes_nothing(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    group = deliver_plan(plan, NOW)
    store = StatusStore(group / "runs_status.yaml")
    store.update(lambda s: s.stage("Llama-3.2-1B-Instruct_rank4").mark("completed", now="T1", job_id="42"))
    kept = (group / "runs_status.yaml").read_text()
    (group / "runs_plan.md").write_text("plan + the Setup section setup added")
    before = {name: (group / name).stat().st_mtime_ns for name in FILES}
    again = plan.model_copy(update={"created": "2025-10-18T11:00:00+00:00"})
    deliver_plan(again, "2025-10-18T11:00:00+00:00")
    assert (group / "runs_status.yaml").read_text() == kept
    assert (group / "runs_plan.md").read_text() == "plan + the Setup section setup added"
    assert {name: (group / name).stat().st_mtime_ns for name in FILES} == before
    assert load_plan(group).created == plan.created
    assert _names(group) == sorted(FILES + ["runs_status.yaml.lock"])


def test_same_design_recreates_a_missing_status_file(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    group = deliver_plan(plan, NOW)
    (group / "runs_status.yaml").unlink()
    deliver_plan(plan, NOW)
    assert (group / "runs_status.yaml").read_text() == dump_status(initial_status(plan), NOW)


def test_design_changing_existing_runs_is_refused_and_nothing_written(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    group = deliver_plan(plan, NOW)
    before = {name: (group / name).read_bytes() for name in FILES}
    training = {**design_data()["training"], "learning_rate": 0.001}
    other = _plan(tmp_path, training=training)
    assert other.design_hash != plan.design_hash
    with pytest.raises(DesignError) as info:
        deliver_plan(other, NOW)
    problem = info.value.problems[0]
    assert problem.field == "training.learning_rate"
    assert "that is a new run group" in problem.message
    assert {name: (group / name).read_bytes() for name in FILES} == before
    assert _listing(tmp_path / "experiments") == [NAME] + [f"{NAME}/{f}" for f in FILES]


def test_foreign_folder_is_refused(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    plan.group_dir.mkdir(parents=True)
    (plan.group_dir / "notes.txt").write_text("mine")
    with pytest.raises(DesignError, match="not a sweepflow run group"):
        deliver_plan(plan, NOW)
    assert _listing(plan.group_dir) == ["notes.txt"]


def test_empty_existing_folder_is_used(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    plan.group_dir.mkdir(parents=True)
    deliver_plan(plan, NOW)
    assert _names(plan.group_dir) == FILES


def test_crash_mid_write_leaves_no_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(tmp_path)
    real = deliver.atomic_write_text
    written: list[str] = []

    def crash_on_second(path, text):
        written.append(Path(path).name)
        if len(written) == 2:
            raise OSError("disk full")
        return real(path, text)

    monkeypatch.setattr(deliver, "atomic_write_text", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        deliver_plan(plan, NOW)
    assert written == FILES[:2]
    assert not plan.group_dir.exists()
    assert _listing(tmp_path / "experiments") == []  # staging folder removed too
    monkeypatch.setattr(deliver, "atomic_write_text", real)
    deliver_plan(plan, NOW)  # a later delivery works
    assert _names(plan.group_dir) == FILES


def test_stale_staging_of_a_dead_process_is_cleaned(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    parent = plan.group_dir.parent
    parent.mkdir(parents=True)
    pid = os.fork()
    if pid == 0:  # a child that exits at once: its pid is then dead
        os._exit(0)
    os.waitpid(pid, 0)
    stale = parent / f".{NAME}.staging-{pid}"
    stale.mkdir()
    (stale / "experiment.yaml").write_text("half")
    deliver_plan(plan, NOW)
    assert not stale.exists()


def test_load_plan_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="experiment.yaml: file not found"):
        load_plan(tmp_path)
    (tmp_path / "experiment.yaml").write_text("run_group: x\n")
    with pytest.raises(FileFormatError) as info:
        load_plan(tmp_path)
    assert str(tmp_path / "experiment.yaml") in str(info.value)
    assert "is not a valid sweepflow plan" in str(info.value) and "design_hash: required field is missing" in str(info.value)


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    from tasks.core._files import atomic_write_text, read_yaml, write_yaml

    target = tmp_path / "finetune.slurm"
    target.write_text("old")
    target.chmod(0o750)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o750
    write_yaml(tmp_path / "a.yaml", {"b": 1, "a": "é"})
    assert (tmp_path / "a.yaml").read_text() == "b: 1\na: é\n"
    assert read_yaml(tmp_path / "a.yaml") == {"b": 1, "a": "é"}
    assert _names(tmp_path) == ["a.yaml", "finetune.slurm"]


# ---------------------------------------------------------------------------- the plan's read cache


def test_plan_read_through_the_cache_equals_the_yaml(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    group = deliver_plan(plan, NOW)
    cache = GroupLayout(group).plan_cache
    assert cache.is_file()  # written with the plan
    from_cache = load_plan(group)
    cache.unlink()
    from_yaml = load_plan(group)  # parses experiment.yaml, and writes the cache again
    assert from_cache == from_yaml == plan
    assert cache.is_file() and load_plan(group) == plan


def test_cache_is_ignored_when_experiment_yaml_changes(tmp_path: Path) -> None:
    group = deliver_plan(_plan(tmp_path), NOW)
    load_plan(group)
    path = group / "experiment.yaml"
    path.write_text(path.read_text().replace("question: ", "question: Edited by hand. ", 1))
    assert load_plan(group).design.question.startswith("Edited by hand.")
    path.write_text("runs: [\n")
    with pytest.raises(FileFormatError, match="is not valid YAML"):  # the cache never hides a broken file
        load_plan(group)


@pytest.mark.parametrize("content", [b"", b"not json\n{}", b'{"format": 1, "yaml_sha256": "x"}\n{}', None, "model"])
def test_a_broken_or_foreign_cache_only_costs_a_parse(tmp_path: Path, content: bytes | str | None) -> None:
    plan = _plan(tmp_path)
    group = deliver_plan(plan, NOW)
    cache = GroupLayout(group).plan_cache
    header, body = cache.read_bytes().split(b"\n", 1)
    if content is None:  # right header, a body that is not a Plan
        content = header + b'\n{"run_group": 5}'
    elif content == "model":  # written by a sweepflow whose Plan model differs: a stale field must not leak in
        assert b'"question":"' in body
        stale = json.loads(header) | {"model": "0" * 16}
        content = json.dumps(stale).encode() + b"\n" + body.replace(b'"question":"', b'"question":"STALE ')
    cache.write_bytes(content)
    loaded = load_plan(group)
    assert loaded == plan and not loaded.design.question.startswith("STALE")

"""runs_status.yaml: the seed's schema, round trips, terminal-state protection, concurrent writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from test_render import NOW, build_plan
from tasks.fsio import FileFormatError
from tasks.status import (
    BASE_NOTE,
    Attempt,
    RunsStatus,
    RunStatus,
    StageStatus,
    StatusError,
    StatusStore,
    dump_status,
    initial_status,
    load_status,
)

SEED_KEYS = ["status", "job_id", "output", "last_updated"]


def _write_initial(tmp_path: Path) -> Path:
    path = tmp_path / "runs_status.yaml"
    path.write_text(dump_status(initial_status(build_plan()), NOW))
    return path


def test_initial_file_is_exactly_the_seed_schema(tmp_path: Path) -> None:
    data = yaml.safe_load(_write_initial(tmp_path).read_text())
    assert list(data) == ["run_group", "runs"]
    assert data["run_group"] == "cap_8L_llama32_lora_comparison_2025-10-18"
    finetuned = data["runs"]["Llama-3.2-1B-Instruct_rank4"]
    assert list(finetuned) == ["finetune", "evaluations"]
    assert finetuned["finetune"] == {"status": "pending", "job_id": None, "output": None, "last_updated": None}
    assert list(finetuned["evaluations"]) == ["capitalization_8L_epoch_1", "reasoning_epoch_1"]
    for stage in finetuned["evaluations"].values():
        assert list(stage) == SEED_KEYS and stage["status"] == "pending"
    base = data["runs"]["Llama-3.2-1B-Instruct_base"]
    assert base["finetune"] == {"status": "skipped", "job_id": None, "output": None, "last_updated": None, "note": BASE_NOTE}
    assert list(base["evaluations"]) == ["capitalization_8L"]  # no epoch suffix; matrix: one task
    assert list(data["runs"]["Llama-3.2-3B-Instruct_base"]["evaluations"]) == ["capitalization_8L", "reasoning"]


def test_round_trip_keeps_optional_fields_only_when_set(tmp_path: Path) -> None:
    path = _write_initial(tmp_path)
    status = load_status(path)
    stage = status.stage("Llama-3.2-3B-Instruct_rank64")
    stage.mark("failed", now=NOW, job_id="4711", reason="out of memory", slurm_state="OUT_OF_MEMORY", exit_code="0:125")
    stage.attempts.append(Attempt(job_id="4711", slurm_state="OUT_OF_MEMORY", batch_size=8))
    path.write_text(dump_status(status, NOW))
    again = load_status(path)
    assert again == status
    raw = yaml.safe_load(path.read_text())["runs"]["Llama-3.2-3B-Instruct_rank64"]["finetune"]
    assert raw["attempts"] == [{"job_id": "4711", "slurm_state": "OUT_OF_MEMORY", "batch_size": 8}]
    assert "note" not in raw
    untouched = yaml.safe_load(path.read_text())["runs"]["Llama-3.2-1B-Instruct_rank4"]["finetune"]
    assert list(untouched) == SEED_KEYS


def test_numeric_job_id_typed_by_hand_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "runs_status.yaml"
    path.write_text("run_group: g\nruns:\n  r:\n    finetune: {status: running, job_id: 123, output: null, last_updated: null}\n")
    assert load_status(path).stage("r").job_id == "123"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("run_group: g\nruns:\n  r:\n    finetune: {status: done}\n", "runs.r.finetune.status"),
        ("run_group: g\nruns: [a, b]\n", "runs"),
        ("- just a list\n", "not a runs_status.yaml mapping"),
        ("run_group: g\nruns: {r: {finetune: {status: pending}\n", "not valid YAML"),
    ],
)
def test_invalid_content_names_the_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "runs_status.yaml"
    path.write_text(content)
    with pytest.raises(FileFormatError) as info:
        load_status(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="runs_status.yaml: file not found"):
        StatusStore(tmp_path / "runs_status.yaml").read()


def test_update_writes_atomically_and_stamps_header(tmp_path: Path) -> None:
    store = StatusStore(_write_initial(tmp_path))
    store.update(lambda s: s.stage("Llama-3.2-1B-Instruct_rank4").mark("submitted", now="T1", job_id="101"), now="T1")
    text = store.path.read_text()
    assert "# Last updated: T1\n" in text
    assert store.read().stage("Llama-3.2-1B-Instruct_rank4").job_id == "101"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs_status.yaml", "runs_status.yaml.lock"]


def test_terminal_states_are_not_regressed_without_force(tmp_path: Path) -> None:
    store = StatusStore(_write_initial(tmp_path))
    run, key = "Llama-3.2-1B-Instruct_rank4", "capitalization_8L_epoch_1"
    store.update(lambda s: s.stage(run).mark("completed", now="T1", job_id="7", output="/x/epoch_1"))

    def reopen(status: RunsStatus) -> None:
        status.stage(run).mark("running", now="T2")
        status.stage(run, key).mark("submitted", now="T2", job_id="8")  # not terminal: allowed

    new = store.update(reopen)
    assert new.stage(run).status == "completed" and new.stage(run).output == "/x/epoch_1"
    assert store.read().stage(run, key).status == "submitted"
    # base-model fine-tune is skipped (terminal) too
    store.update(lambda s: s.stage("Llama-3.2-1B-Instruct_base").mark("pending"))
    assert store.read().stage("Llama-3.2-1B-Instruct_base").status == "skipped"
    # strict: refused, and nothing written
    before = store.path.read_text()
    with pytest.raises(StatusError, match="completed -> pending"):
        store.update(lambda s: s.stage(run).mark("pending"), strict=True)
    assert store.path.read_text() == before
    # terminal -> terminal is fine; force reopens
    store.update(lambda s: s.stage(run).mark("failed", reason="checkpoint missing"))
    assert store.read().stage(run).status == "failed"
    store.update(lambda s: s.stage(run).mark("pending", job_id=None), force=True)
    assert store.read().stage(run).status == "pending"


def test_invalid_value_from_an_updater_is_rejected(tmp_path: Path) -> None:
    store = StatusStore(_write_initial(tmp_path))
    with pytest.raises(ValidationError):
        store.update(lambda s: setattr(s.stage("Llama-3.2-1B-Instruct_rank4"), "status", "finished"))
    assert store.read().stage("Llama-3.2-1B-Instruct_rank4").status == "pending"


WRITERS, UPDATES = 8, 25


def _writer(path: str, writer: int) -> None:
    store = StatusStore(path)
    for i in range(UPDATES):
        def bump(status: RunsStatus, i: int = i) -> None:
            status.stage(f"run{writer}", f"task_epoch_{i}").mark("completed", now=f"w{writer}-{i}", job_id=f"{writer}{i:03d}")
        store.update(bump)


@pytest.mark.slow
def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    runs = {
        f"run{w}": RunStatus(finetune=StageStatus(), evaluations={f"task_epoch_{i}": StageStatus() for i in range(UPDATES)})
        for w in range(WRITERS)
    }
    store = StatusStore(tmp_path / "runs_status.yaml")
    store.write(RunsStatus(run_group="g", runs=runs), now=NOW)
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.path), w)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    final = store.read()
    done = [(run, key) for run, key, stage in final.stages() if stage.status == "completed"]
    assert len(done) == WRITERS * UPDATES
    assert final.stage("run3", "task_epoch_7").job_id == "3007"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

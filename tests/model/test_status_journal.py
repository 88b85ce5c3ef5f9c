"""runs_status.yaml's journal: changes appended per run, applied by every reader, folded into the YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tasks.model._status_journal as journal_module
from tasks.model._status import RunsStatus, RunStatus, StageStatus, initial_status
from tasks.model._status_file import StatusStore, load_status
from tests.support.seed_plan import NOW, build_plan

RUN, EVAL = "Llama-3.2-1B-Instruct_rank4", "capitalization_8L_epoch_1"


def _store(tmp_path: Path, runs: int = 0) -> StatusStore:
    """A store with its cache (and so its journal) whatever the file's size; `runs` extra runs make it large."""
    status = initial_status(build_plan())
    for n in range(runs):
        status.runs[f"extra{n:04d}"] = RunStatus(
            finetune=StageStatus(), evaluations={f"task_epoch_{e}": StageStatus() for e in range(2)}
        )
    store = StatusStore(tmp_path / "runs_status.yaml", cache_min_bytes=0)
    store.write(status, now=NOW)
    return store


def _submit(store: StatusStore, run: str, job: str) -> RunsStatus:
    return store.update(lambda s: s.stage(run).mark("submitted", now="T1", job_id=job), now="T1")


def test_an_update_is_appended_and_every_reader_sees_it(tmp_path: Path) -> None:
    store = _store(tmp_path, runs=20)
    yaml_before = store.path.read_bytes()
    new = _submit(store, RUN, "101")
    assert store.path.read_bytes() == yaml_before  # not rewritten
    lines = store.journal_path.read_bytes().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["run"] == RUN
    assert StatusStore(store.path, cache_min_bytes=0).read() == new  # another process's store
    assert StatusStore(store.path).read().stage(RUN).job_id == "101"  # one without the cache too
    assert load_status(store.path).stage(RUN).job_id is None  # the YAML alone is behind until folded
    assert store.flush() and not store.journal_path.exists()
    assert load_status(store.path) == new == store.read()


def test_a_hand_edit_of_the_yaml_makes_the_journal_stale(tmp_path: Path) -> None:
    store = _store(tmp_path, runs=20)
    _submit(store, RUN, "101")
    store.path.write_text(store.path.read_text().replace("status: pending", "status: skipped", 1))
    assert store.read() == load_status(store.path)  # the edit wins: the journal extended other bytes
    assert store.read().stage(RUN).job_id is None
    new = _submit(store, RUN, "102")  # the next write starts from the edited file
    assert new.stage(RUN).job_id == "102"


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    store = _store(tmp_path, runs=20)
    _submit(store, RUN, "101")
    with store.journal_path.open("ab") as handle:
        handle.write(b'{"run": "' + RUN.encode() + b'", "entry": {"finetune": {"sta')  # a crash mid-append
    assert store.read().stage(RUN).job_id == "101"


def test_the_journal_is_folded_when_old_or_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path, runs=20)
    _submit(store, RUN, "101")
    assert store.journal_path.exists()
    monkeypatch.setattr(journal_module, "FOLD_AFTER_S", 0.0)
    new = _submit(store, RUN, "102")  # due: this write folds
    assert not store.journal_path.exists() and load_status(store.path) == new
    monkeypatch.undo()
    monkeypatch.setattr(journal_module, "FOLD_FRACTION", 0.001)
    _submit(store, RUN, "103")
    assert not store.journal_path.exists()


def test_writes_grow_with_the_changes_not_the_file(tmp_path: Path) -> None:
    store = _store(tmp_path, runs=400)
    size = store.path.stat().st_size
    store.bytes_written = 0
    for n in range(200):
        _submit(store, f"extra{n:04d}", str(1000 + n))
    store.flush()
    assert store.read().stage("extra0199").job_id == "1199"
    # every update rewriting the file (and its cache) would be 200 x 2 x size
    assert store.bytes_written < 12 * size, (store.bytes_written, size)


def test_a_batch_puts_each_change_on_disk_before_the_next(tmp_path: Path) -> None:
    store = StatusStore(_store(tmp_path).path)  # a small file (no cache): the batch folds when it ends
    other = StatusStore(store.path)
    with store.batch() as batch:
        assert batch.change(RUN, "finetune", lambda s: s.mark("submitted", now="T1", job_id="7"))
        assert other.read().stage(RUN).job_id == "7"  # durable before the next sbatch
        assert batch.change(RUN, EVAL, lambda s: s.mark("submitted", now="T1", job_id="8"))
        assert batch.status.stage(RUN, EVAL).job_id == "8"
    assert not store.journal_path.exists()
    assert load_status(store.path).stage(RUN, EVAL).job_id == "8"


def test_a_batch_keeps_finished_stages_and_survives_a_crash(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.update(lambda s: s.stage(RUN).mark("cancelled", now="T0", reason="by a user"))
    with pytest.raises(RuntimeError), store.batch() as batch:
        assert not batch.change(RUN, "finetune", lambda s: s.mark("submitted", job_id="9"))
        assert batch.status.stage(RUN).status == "cancelled"
        assert batch.change(RUN, EVAL, lambda s: s.mark("submitted", job_id="10"))
        raise RuntimeError("the process dies here")
    assert store.journal_path.exists()  # not folded, but every reader applies it
    status = store.read()
    assert status.stage(RUN).status == "cancelled" and status.stage(RUN, EVAL).job_id == "10"

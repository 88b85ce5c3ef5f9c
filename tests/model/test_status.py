"""runs_status.yaml: the seed's schema, round trips, terminal-state protection, concurrent writers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import tasks.model._status_file as status_module
from tasks.core._files import FileFormatError, dump_yaml
from tasks.core._templating import render_template
from tasks.model._status import BASE_NOTE, Attempt, RunsStatus, RunStatus, StageStatus, StatusError, initial_status
from tasks.model._status_file import StatusStore, dump_status, load_status
from tests.support.seed_plan import NOW, build_plan

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
    stage.mark("failed", now=NOW, job_id="4711", reason="out of memory", scheduler_state="OUT_OF_MEMORY", exit_code="0:125")
    stage.attempts.append(Attempt(job_id="4711", scheduler_state="OUT_OF_MEMORY", batch_size=8))
    path.write_text(dump_status(status, NOW))
    again = load_status(path)
    assert again == status
    raw = yaml.safe_load(path.read_text())["runs"]["Llama-3.2-3B-Instruct_rank64"]["finetune"]
    assert raw["attempts"] == [{"job_id": "4711", "scheduler_state": "OUT_OF_MEMORY", "batch_size": 8}]
    assert "note" not in raw
    untouched = yaml.safe_load(path.read_text())["runs"]["Llama-3.2-1B-Instruct_rank4"]["finetune"]
    assert list(untouched) == SEED_KEYS


def test_a_file_written_before_the_backend_seam_loads_and_is_written_back_with_the_neutral_key(tmp_path: Path) -> None:
    """`slurm_state` (the old key) is read as `scheduler_state` and written back under that name, nothing lost."""
    path = _write_initial(tmp_path)
    old = yaml.safe_load(path.read_text())
    finetune = old["runs"]["Llama-3.2-3B-Instruct_rank64"]["finetune"]
    finetune.update(status="failed", job_id="4711", slurm_state="OUT_OF_MEMORY", exit_code="0:125",
                    attempts=[{"job_id": "4711", "slurm_state": "OUT_OF_MEMORY", "cause": "oom"}])
    path.write_text(dump_yaml(old))
    store = StatusStore(path, cache_min_bytes=0)  # the cache too is written, then read again
    stage = store.read().stage("Llama-3.2-3B-Instruct_rank64")
    assert (stage.scheduler_state, stage.attempts[0].scheduler_state) == ("OUT_OF_MEMORY", "OUT_OF_MEMORY")
    store.update(lambda s: s.stage("Llama-3.2-1B-Instruct_rank4").mark("running", now=NOW, job_id="4712"))
    assert "slurm_state" not in path.read_text()
    again = yaml.safe_load(path.read_text())["runs"]["Llama-3.2-3B-Instruct_rank64"]["finetune"]
    assert again["scheduler_state"] == "OUT_OF_MEMORY" and again["exit_code"] == "0:125"
    assert again["attempts"] == [{"job_id": "4711", "scheduler_state": "OUT_OF_MEMORY", "cause": "oom"}]
    assert store.read().stage("Llama-3.2-1B-Instruct_rank4").job_id == "4712"


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
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sweepflow", "runs_status.yaml", "runs_status.yaml.lock"]
    assert [p.name for p in store.backups()] == ["runs_status.yaml.1"]  # the file before this write


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


def _writer(path: str, writer: int, cache_min_bytes: int | None = None) -> None:
    store = StatusStore(path, cache_min_bytes=cache_min_bytes)
    for i in range(UPDATES):
        def bump(status: RunsStatus, i: int = i) -> None:
            status.stage(f"run{writer}", f"task_epoch_{i}").mark("completed", now=f"w{writer}-{i}", job_id=f"{writer}{i:03d}")
        store.update(bump)


@pytest.mark.slow
@pytest.mark.parametrize("cache_min_bytes", [None, 0], ids=["small-file-no-cache", "with-cache"])
def test_concurrent_writers_lose_no_update(tmp_path: Path, cache_min_bytes: int | None) -> None:
    runs = {
        f"run{w}": RunStatus(finetune=StageStatus(), evaluations={f"task_epoch_{i}": StageStatus() for i in range(UPDATES)})
        for w in range(WRITERS)
    }
    store = StatusStore(tmp_path / "runs_status.yaml", cache_min_bytes=cache_min_bytes)
    store.write(RunsStatus(run_group="g", runs=runs), now=NOW)
    # spawn, not fork: a child forked after a Prefect flow ran in this process exits 1 at shutdown
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.path), w, cache_min_bytes)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    final = store.read()  # the YAML and its journal
    done = [(run, key) for run, key, stage in final.stages() if stage.status == "completed"]
    assert len(done) == WRITERS * UPDATES
    assert final.stage("run3", "task_epoch_7").job_id == "3007"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    store.flush()
    assert load_status(store.path) == final  # folded: the YAML itself holds every update
    assert store.cache_path.exists() == (cache_min_bytes == 0)
    if cache_min_bytes == 0:
        assert _cache_matches(store)


# ------------------------------------------------------------------ read cache (.sweepflow/runs_status.cache.json)

RUN, EVAL = "Llama-3.2-1B-Instruct_rank4", "capitalization_8L_epoch_1"


def _cached_store(tmp_path: Path, journal: bool = False) -> StatusStore:
    """A store whose cache is used whatever the file's size (the default skips files under 64 KiB).

    Without its journal (the default here) every update writes the whole file, as these tests check.
    """
    store = StatusStore(tmp_path / "runs_status.yaml", cache_min_bytes=0, journal=journal)
    store.write(initial_status(build_plan()), now=NOW)
    return store


def _cache_matches(store: StatusStore) -> bool:
    header = json.loads(store.cache_path.read_bytes().split(b"\n", 1)[0])
    return header["yaml_sha256"] == hashlib.sha256(store.path.read_bytes()).hexdigest()


def _plain_pyyaml_text(status: RunsStatus, now: str) -> str:
    """The file as the store always wrote it: the template around one yaml.dump of the whole status."""
    body = yaml.dump(status.model_dump(mode="json"), Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)
    return render_template("state/runs_status.yaml.j2", now=now, body=body)


def _no_yaml_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the YAML was parsed although the cache matches it")

    monkeypatch.setattr(status_module, "parse_yaml", refuse)
    monkeypatch.setattr(yaml, "load", refuse)


def test_cache_is_written_beside_every_write_and_used_for_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _cached_store(tmp_path)
    assert store.cache_path == tmp_path / ".sweepflow" / "runs_status.cache.json"
    assert _cache_matches(store)
    expected = load_status(store.path)
    _no_yaml_parsing(monkeypatch)
    assert store.read() == expected  # from the cache: the YAML loader would raise
    new = store.update(lambda s: s.stage(RUN).mark("submitted", now="T1", job_id="101"), now="T1")
    assert _cache_matches(store)
    assert store.read() == new and store.read().stage(RUN).job_id == "101"
    monkeypatch.undo()
    assert load_status(store.path) == new  # and the YAML says the same
    assert store.path.read_text() == _plain_pyyaml_text(new, "T1")


def test_hand_edited_yaml_wins_over_the_cache(tmp_path: Path) -> None:
    store = _cached_store(tmp_path)
    before = store.path.stat()
    text = store.path.read_text()
    # same length, same modification time: only the content tells the edit apart
    edited = text.replace(" status: pending\n", " status: running\n", 1)
    assert edited != text
    store.path.write_text(edited)
    os.utime(store.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert store.path.stat().st_size == before.st_size
    first = next((run, key) for run, key, stage in store.read().stages() if stage.status == "running")
    assert first == (RUN, "finetune")
    assert _cache_matches(store)  # the read refreshed the cache for the edited file
    # an edit of the YAML is the truth for updates too
    store.path.write_text(edited.replace(" status: pending\n", " status: skipped\n", 1))
    new = store.update(lambda s: None, now="T2")
    assert new.stage(RUN).status == "running" and new.stage(RUN, EVAL).status == "skipped"
    assert load_status(store.path) == new and _cache_matches(store)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all\n{",
        b'{"format": 1, "yaml_sha256": "0000"}\n{}',  # another file's cache
        b"[1, 2]\n[]",
    ],
    ids=["empty", "garbage", "stale", "not-a-header"],
)
def test_corrupt_or_stale_cache_is_ignored(tmp_path: Path, content: bytes) -> None:
    store = _cached_store(tmp_path)
    expected = load_status(store.path)
    store.cache_path.write_bytes(content)
    assert store.read() == expected
    assert _cache_matches(store)  # rewritten from the YAML


def test_cache_with_matching_hash_but_bad_body_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = _cached_store(tmp_path)
    expected = load_status(store.path)
    header, _ = store.cache_path.read_bytes().split(b"\n", 1)
    store.cache_path.write_bytes(header + b'\n{"run_group": "g", "runs": {"r": {"finetune": {"status": "done"}}}}')
    assert store.read() == expected
    assert "ignoring the unreadable cache" in caplog.text
    store.cache_path.write_bytes(header + b"\n{truncated")
    assert store.update(lambda s: s.stage(RUN).mark("running", now="T1"), now="T1").stage(RUN).status == "running"
    assert store.path.read_text() == _plain_pyyaml_text(load_status(store.path), "T1")


def test_cache_run_index_pointing_elsewhere_is_not_trusted(tmp_path: Path) -> None:
    store = _cached_store(tmp_path)
    store.update(lambda s: s.stage(RUN).mark("running", now="T1"), now="T1")
    header, body = store.cache_path.read_bytes().split(b"\n", 1)
    data = json.loads(header)
    data["runs"] = [[name, start + 1, end, fp] for name, start, end, fp in data["runs"]]  # off by one
    store.cache_path.write_bytes(json.dumps(data).encode() + b"\n" + body)
    new = store.update(lambda s: s.stage(RUN, EVAL).mark("submitted", now="T2", job_id="9"), now="T2")
    assert store.path.read_text() == _plain_pyyaml_text(new, "T2")


def test_file_stays_exactly_what_pyyaml_writes_across_updates(tmp_path: Path) -> None:
    """Runs are dumped one by one and unchanged ones reused: the bytes must not notice."""
    store = _cached_store(tmp_path)
    odd = {
        "r" * 140: "a key too long for a simple key",
        "ünïcödé run": "unicode",
        "quote's \"run\": #1": "quotes and YAML syntax",
        "yes": "a name YAML reads as a bool",
        "123": "a name YAML reads as an int",
    }

    def add_odd_runs(status: RunsStatus) -> None:
        for name in odd:
            status.runs[name] = RunStatus(finetune=StageStatus(), evaluations={"t_epoch_0": StageStatus()})

    steps = [
        add_odd_runs,
        lambda s: s.stage(RUN).mark("running", now="T", job_id="1", reason="x" * 250 + " a long reason, folded by the emitter"),
        lambda s: s.stage(RUN).attempts.append(Attempt(job_id="1", elapsed_s=float("inf"), node="gpu 1", exit_code="0:0")),
        lambda s: s.stage("r" * 140).mark("failed", now="T", reason="line one\nline two\n", scheduler_state="OUT_OF_MEMORY"),
        lambda s: s.stage("ünïcödé run", "t_epoch_0").mark("completed", now="T", output="/données/x.eval"),
        lambda s: s.stage(RUN).mark("pending"),  # running -> pending: allowed
        lambda s: s.stage("r" * 140).mark("pending"),  # refused (failed is terminal): the file keeps "failed"
        lambda s: None,
    ]
    for n, step in enumerate(steps):
        new = store.update(step, now=f"T{n}")
        assert store.path.read_text() == _plain_pyyaml_text(new, f"T{n}"), f"step {n}"
        assert load_status(store.path) == new and _cache_matches(store)
    assert store.read().stage("r" * 140).status == "failed"
    assert store.read().stage(RUN).attempts[0].elapsed_s is None  # as always: pydantic dumps an infinite float as null


def test_only_changed_runs_are_dumped_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _cached_store(tmp_path)
    dumped: list[object] = []

    def counting(data: object) -> str:
        dumped.append(data)
        return dump_yaml(data)

    monkeypatch.setattr(status_module, "dump_yaml", counting)
    new = store.update(lambda s: s.stage(RUN, EVAL).mark("submitted", now="T1", job_id="7"), now="T1")
    assert dumped == [{"run_group": new.run_group}, {"runs": {RUN: new.runs[RUN].model_dump(mode="json")}}]
    assert store.path.read_text() == _plain_pyyaml_text(new, "T1")
    dumped.clear()
    store.update(lambda s: None, now="T2")
    assert dumped == [{"run_group": new.run_group}]
    assert store.path.read_text() == _plain_pyyaml_text(new, "T2")


def test_updater_appending_a_raw_dict_is_still_normalised(tmp_path: Path) -> None:
    store = _cached_store(tmp_path)
    with pytest.warns(UserWarning):  # pydantic's serializer warning, as before
        new = store.update(lambda s: s.stage(RUN).attempts.append({"job_id": 5}), now="T1")  # type: ignore[arg-type]
    assert new.stage(RUN).attempts == [Attempt(job_id="5")]
    assert store.path.read_text() == _plain_pyyaml_text(new, "T1")
    assert "- job_id: '5'" in store.path.read_text()


def test_small_files_get_no_cache_and_drop_a_stale_one(tmp_path: Path) -> None:
    store = _cached_store(tmp_path)
    assert store.cache_path.exists()
    small = StatusStore(store.path)  # default: no cache under 64 KiB
    small.update(lambda s: s.stage(RUN).mark("running", now="T1"), now="T1")
    assert not store.cache_path.exists()
    assert small.read().stage(RUN).status == "running"


def test_dump_yaml_writes_what_yaml_dump_writes() -> None:
    options = {"sort_keys": False, "allow_unicode": True, "default_flow_style": False, "width": 100}
    shared = {"k": [1]}
    cases = [
        {"a": 1, "b": [1.5, float("inf"), float("-inf"), 1e-05, True, False, None, "yes", "", "~", "null", "0o17", "1.0",
                       "2001-01-01", "x: y", "- z", "multi\nline", "ü", "  padded ", "#c", "a" * 300], "c": {}, "d": []},
        {"t": (1, 2)},  # not plain data: yaml.dump itself
        {"a": shared, "b": shared},  # anchors and aliases: yaml.dump itself
        [1, {"x": None, 2: "int key"}],
        "plain",
        None,
    ]
    for case in cases:
        assert dump_yaml(case) == yaml.dump(case, Dumper=yaml.CSafeDumper, **options)

"""The setup-experiment flow through Prefect's test harness: render once, validate, write.

A planned run group over fake resources (the `fake_site` fixture, tests/support/fakesite.py);
`tune validate` is the real one (in-process), on configs as rendered, or on one broken on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.model._design_file import parse_design
from tasks.planning._deliver import deliver_plan
from tasks.planning._planner import build_plan
from tests.support.fakesite import DATE, FakeSite

pytestmark = pytest.mark.prefect

NOW = "2026-01-02T00:00:00+00:00"


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def _planned(site: FakeSite, name: str = "setup_flow") -> Path:
    return deliver_plan(build_plan(parse_design(site.design(name=name), base=site.root), date=DATE), now=NOW)


def _task_names(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(r.name.rsplit("-", 1)[0] for r in runs)


def test_renders_once_validates_and_writes(prefect_server, fake_site: FakeSite) -> None:
    from flows.setup_experiment import setup_experiment

    group = _planned(fake_site)
    state = setup_experiment(str(group), return_state=True)
    assert state.is_completed(), state.message
    assert state.result() == str(group)
    runs = ["Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64", "Llama-3.2-3B-Instruct_rank4",
            "Llama-3.2-3B-Instruct_rank64"]
    for run in runs:
        assert (group / run / "finetune.yaml").is_file() and (group / run / "finetune.slurm").is_file()
    assert _task_names(state.state_details.flow_run_id) == [
        "check-fidelity", "render-files", "validate-configs", "write-files"
    ]


def test_a_config_that_does_not_validate_stops_before_anything_is_written(
    prefect_server, fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.setup._experiment as setup
    from flows.setup_experiment import setup_experiment

    group = _planned(fake_site)
    before = sorted(p.relative_to(group).as_posix() for p in group.rglob("*"))
    real = setup.experiment_files

    def one_broken(plan, cluster, overrides):  # a component torchtune cannot import
        files = real(plan, cluster, overrides)
        rel = "Llama-3.2-3B-Instruct_rank4/finetune.yaml"
        text = files[rel].content.replace("torchtune.models.llama3_2.lora_llama3_2_3b", "torchtune.models.no_such_model")
        assert text != files[rel].content
        files[rel] = files[rel].model_copy(update={"content": text})
        return files

    monkeypatch.setattr(setup, "experiment_files", one_broken)
    state = setup_experiment(str(group), return_state=True)
    assert state.is_failed()
    assert "Generated torchtune configs do not validate" in state.message
    assert "Llama-3.2-3B-Instruct_rank4/finetune.yaml" in state.message
    assert "Llama-3.2-1B-Instruct_rank4" not in state.message  # the others validate
    assert sorted(p.relative_to(group).as_posix() for p in group.rglob("*")) == before  # nothing written


def test_dry_run_writes_nothing_into_the_group(prefect_server, fake_site: FakeSite) -> None:
    import shutil

    from flows.setup_experiment import setup_experiment

    group = _planned(fake_site)
    before = sorted(p.relative_to(group).as_posix() for p in group.rglob("*"))
    state = setup_experiment(str(group), dry_run=True, validate_configs=False, return_state=True)
    assert state.is_completed(), state.message
    preview = Path(state.result())
    try:
        assert preview != group and (preview / "Llama-3.2-1B-Instruct_rank4" / "finetune.yaml").is_file()
        assert sorted(p.relative_to(group).as_posix() for p in group.rglob("*")) == before
    finally:
        shutil.rmtree(preview)


def test_a_folder_without_a_plan_fails_with_the_file_named(prefect_server, tmp_path: Path) -> None:
    from flows.setup_experiment import setup_experiment

    state = setup_experiment(str(tmp_path), return_state=True)
    assert state.is_failed()
    assert f"{tmp_path / 'experiment.yaml'}" in state.message and "not found" in state.message

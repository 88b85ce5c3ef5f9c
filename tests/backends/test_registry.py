"""The backend registry (tasks/backends/_select.py) and the job file names each backend owns (JobNaming)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

import tasks.backends.slurm._kind as slurm_kind
from tasks.backends import (
    BACKENDS,
    JobSpec,
    backend_name,
    failure_classifier,
    job_naming,
    register_backend,
    script_kind,
)
from tasks.backends.local import LOCAL
from tasks.backends.slurm import SLURM, classify_failure
from tasks.core._errors import SweepflowError
from tasks.model._cluster import ClusterSettings
from tasks.model._job_naming import JobNaming
from tests.support.workstation import NAMING, WORKSTATION, registered


def test_slurm_and_local_keep_the_file_names_existing_run_groups_have() -> None:
    for kind in (SLURM, LOCAL):
        assert kind.naming.script("finetune") == "finetune.slurm"
        assert kind.naming.log("4711") == "slurm-4711.out" and kind.naming.log_glob == "slurm-*.out"
        assert kind.classify_failure is classify_failure


def test_a_log_name_gives_back_its_job_id_only_for_its_own_backend() -> None:
    assert SLURM.naming.job_id_of(Path("/g/run/slurm-4711.out")) == "4711"
    assert SLURM.naming.job_id_of("job-12.log") is None and NAMING.job_id_of("job-12.log") == "12"
    assert NAMING.job_id_of("job-.log") is None  # no id at all
    with pytest.raises(ValidationError, match="job_id"):
        JobNaming(script_suffix=".sh", log_name="job.log")
    with pytest.raises(ValidationError, match="suffix"):
        JobNaming(script_suffix="sh", log_name="job-{job_id}.log")


def test_auto_names_its_files_without_asking_a_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ping(_path: str | None) -> bool:
        raise AssertionError("scontrol ping was run")

    monkeypatch.setattr(slurm_kind, "_controller_up", no_ping)
    auto = ClusterSettings(backend="auto")
    assert job_naming(auto) == SLURM.naming and failure_classifier(auto) is classify_failure
    assert script_kind(auto).render_header is SLURM.render_header


def test_a_registered_backend_is_selected_by_name_and_an_unknown_name_is_refused(tmp_path: Path) -> None:
    settings = ClusterSettings(backend=WORKSTATION.name)
    with pytest.raises(SweepflowError, match=r"'workstation' is not a known backend \(known: auto, local, slurm\)"):
        backend_name(settings)
    with registered():
        assert backend_name(settings) == "workstation" and job_naming(settings) == NAMING
        header = script_kind(settings).render_header(JobSpec(name="j", time_limit="00:10:00", mem="1G", cpus=1))
        assert header.startswith("# Workstation job j") and "#WS --time=00:10:00" in header
    assert WORKSTATION.name not in BACKENDS
    with pytest.raises(ValueError, match="auto"):
        register_backend(replace(WORKSTATION, name="auto"))
    with pytest.raises(ValidationError):
        ClusterSettings(backend="Work station")


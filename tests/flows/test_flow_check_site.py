"""The check-site flow through Prefect's test harness: real check jobs on the local backend."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.prefect

CPU_LOCAL = {"backend": "local", "device": "cpu", "mem": "2G", "eval_mem": "2G"}


@pytest.fixture(scope="module")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def test_check_site_reports_each_shape_and_publishes_an_artifact(prefect_server, fake_site, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.check_site import check_site

    cluster = {**CPU_LOCAL, "eval_mem": "1G"}  # evaluations ask for less: two shapes, two jobs
    state = check_site(fake_site.design(name="site", cluster=cluster), timeout_minutes=3, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert [s["shape"]["stages"] for s in report["shapes"]] == [["finetune"], ["eval"]]
    assert all(s["outcome"] == "passed" for s in report["shapes"])
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_latest_artifacts()}
    assert any(k and k.startswith("site-check-site-") for k in keys)
    assert {p.name for p in (tmp_path / "out").iterdir()} == {".site_checks"}  # no run group is written

    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    failed = check_site(fake_site.design(name="site", cluster={**cluster, "job_env": {"venv": str(bare)}}),
                        timeout_minutes=3, return_state=True)
    assert failed.is_failed()
    assert failed.message.startswith("The site check failed:")
    assert "finetune: default partition, no GPU, 2G: failed: torchtune is not installed" in failed.message
    assert "eval: default partition, no GPU, 1G: failed:" in failed.message

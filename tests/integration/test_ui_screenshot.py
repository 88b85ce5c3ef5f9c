"""The Prefect UI really shows a finished run group's runs table and results (headless chromium).

1. A finished run group without training: fakesite -> plan -> setup (`make_group`), jobs run
   through `FakeScheduler`, checkpoints on disk, and REAL inspect-ai `.eval` logs from the
   `mockllm/model` provider (the helpers of tests/support/finished_runs.py), synced to completed.
2. A real `prefect server start` on a free 127.0.0.1 port with its own PREFECT_HOME (its own
   SQLite database), stopped by its process group at the end.
3. `flows.sync_status.sync_status(group)` and `flows.summarize_experiment.summarize_experiment(group)`
   against it: the keyed artifacts status-/progress-/results-/summary-<group slug>.
4. Debian's chromium, headless: screenshots of /artifacts, of the results table artifact's page
   and of the runs (status) table artifact's page (valid PNGs, not blank), plus `--dump-dom` of
   both table pages, which must hold the run names, the "accuracy" column and its numbers, the
   stages and their states: the UI really rendered the tables.

Nothing is installed at test time: without /usr/bin/chromium the test is skipped (CI installs
it in .ci/run). The screenshots are kept in tests/artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.processes import start_prefect_server, stop

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

CHROMIUM = "/usr/bin/chromium"
SHOTS = TESTS / "artifacts" / "ui"
GROUP_NAME = "ui_check"

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def finished_group(root: Path) -> Path:
    """A run group whose every stage completed: 1 model x ranks 4/64 (2 epochs) + its base model.

    Accuracies (of 4 samples): rank4 epoch 0/1 = 2/3, rank64 epoch 0/1 = 3/4, base = 1.
    """
    from tasks.execution._submit import submit_pending
    from tasks.execution._sync import sync_jobs
    from tasks.model._plan_file import load_plan
    from tests.support.fake_scheduler import FakeScheduler, cluster, make_group
    from tests.support.finished_runs import (  # real inspect-ai logs (mockllm)
        mock_eval,
        stage_job_id,
        write_training_outputs,
    )

    group = make_group(root, name=GROUP_NAME, models=["Llama-3.2-1B-Instruct"], cluster={"backend": "local"})
    fake = FakeScheduler()
    submit_pending(group, fake, cluster(), sleep=lambda s: None)
    digest = load_plan(group).design_hash
    rank4, rank64, base = "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64", "Llama-3.2-1B-Instruct_base"
    for run, elapsed in ((rank4, 900.0), (rank64, 1100.0)):
        write_training_outputs(group, run, stage_job_id(group, run), disk_logger=True)
        fake.finish(stage_job_id(group, run), "COMPLETED", elapsed_s=elapsed, exit_code="0:0", node="gpu1")
    scores = {(rank4, 0): 2, (rank4, 1): 3, (rank64, 0): 3, (rank64, 1): 4, (base, "base"): 1}
    for (run, epoch), correct in scores.items():
        mock_eval(group, run, epoch, correct, digest)
        key = "cap" if epoch == "base" else f"cap_epoch_{epoch}"
        fake.finish(stage_job_id(group, run, key), "COMPLETED", elapsed_s=60.0, exit_code="0:0", node="gpu1")
    sync_jobs(group, fake)
    return group


def _chromium(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Headless chromium with a fresh profile under tmp_path (flags: /work/shared/REFERENCE.md)."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--virtual-time-budget=15000", "--window-size=1400,900", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _screenshot(tmp_path: Path, url: str, png: Path) -> None:
    png.unlink(missing_ok=True)
    done = _chromium(tmp_path, f"--screenshot={png}", url)
    assert png.exists(), f"chromium wrote no screenshot of {url} (exit {done.returncode}):\n{done.stderr[-2000:]}"


def _dom(tmp_path: Path, url: str, keep: Path) -> str:
    """The DOM after the page's scripts ran (`--dump-dom`); kept next to the screenshots."""
    done = _chromium(tmp_path, "--dump-dom", url)
    assert done.returncode == 0 and "</html>" in done.stdout, f"--dump-dom {url} (exit {done.returncode}):\n{done.stderr[-2000:]}"
    keep.write_text(done.stdout)
    return done.stdout


def _assert_not_blank(png: Path) -> None:
    from PIL import Image

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    assert len(data) > 20_000, f"{png} is only {len(data)} bytes"
    with Image.open(png) as image:
        assert image.size == (1400, 900), image.size
        rgb = image.convert("RGB")
        colors = rgb.getcolors(maxcolors=1 << 20) or []
        extrema = rgb.getextrema()
    assert len(colors) > 50, f"{png}: only {len(colors)} colours: a blank page?"
    assert any(low != high for low, high in extrema), f"{png} is a single colour"


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason=f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (.ci/run does)")
def test_ui_shows_runs_and_results_artifacts(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows._common import artifact_slug
    from flows.summarize_experiment import summarize_experiment
    from flows.sync_status import sync_status

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    group = finished_group(tmp_path / "site")
    slug = artifact_slug(group.name)
    keys = {f"{kind}-{slug}" for kind in ("status", "progress", "results", "summary")}
    timings["finished group"] = time.monotonic() - t0

    SHOTS.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        t = time.monotonic()
        server = start_prefect_server(tmp_path, ROOT)
        base_url, api = server.url, server.api
        timings["server start"] = time.monotonic() - t

        t = time.monotonic()
        with temporary_settings(updates={PREFECT_API_URL: api}):
            synced = sync_status(str(group), return_state=True)
            assert synced.is_completed(), synced.message
            assert synced.result() == {"completed": 7, "skipped": 1}, synced.result()
            summarized = summarize_experiment(str(group), return_state=True)
            assert summarized.is_completed(), summarized.message
            with get_client(sync_client=True) as client:
                found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=sorted(keys))))
        timings["sync-status + summarize-experiment"] = time.monotonic() - t
        by_key = {a.key: a for a in found}
        assert set(by_key) == keys, sorted(by_key)
        assert by_key[f"progress-{slug}"].data == 100.0

        shots = {
            "artifacts.png": f"{base_url}/artifacts",
            "results.png": f"{base_url}/artifacts/artifact/{by_key[f'results-{slug}'].id}",
            "runs_status.png": f"{base_url}/artifacts/artifact/{by_key[f'status-{slug}'].id}",
        }
        t = time.monotonic()
        for name, url in shots.items():
            _screenshot(tmp_path, url, SHOTS / name)
            _assert_not_blank(SHOTS / name)
        timings["3 screenshots"] = time.monotonic() - t

        # the DOM the UI built for each table artifact: the table itself, not a spinner or an error
        t = time.monotonic()
        runs = ["Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64", "Llama-3.2-1B-Instruct_base"]
        dom = _dom(tmp_path, shots["results.png"], SHOTS / "results.html")
        for text in (*runs, f"results-{slug}", "accuracy", "delta vs base", "0.250", "1.000", "+0.750"):
            assert text in dom, f"{text!r} not in the rendered results page (see {SHOTS / 'results.html'})"
        dom = _dom(tmp_path, shots["runs_status.png"], SHOTS / "runs_status.html")
        for text in (*runs, f"status-{slug}", "finetune", "cap_epoch_1", "completed", "skipped"):
            assert text in dom, f"{text!r} not in the rendered runs table page (see {SHOTS / 'runs_status.html'})"
        timings["2 DOM dumps"] = time.monotonic() - t
    finally:
        if server is not None:
            stop(server.process)
            shutil.copy(server.log, SHOTS / "server.log")
        timings["total"] = time.monotonic() - t0
        print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), file=sys.stderr)

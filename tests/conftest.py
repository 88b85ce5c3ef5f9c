"""Fixtures every test folder may use: the fake site, the fake scheduler and run groups built on them.

- `fake_site`: model folders (config.json and the weight files torchtune loads), a dataset and an
  eval script under `tmp_path` (tests/support/fakesite.py); `fake_site.design(name=..., **changes)`
  is a 2 models x 2 ranks design over them, `fake_site.group_dir(name)` where plan-runs puts it.
- `fake_scheduler`: a fresh in-memory `FakeScheduler` (tests/support/fake_scheduler.py).
- `run_group`: a set-up run group under `tmp_path` (plan -> deliver -> setup, `make_group`):
  2 models x ranks 4/64 (2 epochs, every epoch evaluated) + 2 controls, nothing submitted.
- `launched`: `(group, scheduler)`, that run group with every job submitted to a `FakeScheduler`.

tests/integration/conftest.py adds the real SLURM cluster fixtures for tests/integration.
Planning reads the free disk under `paths.output_dir` (`tasks.planning._verify.free_disk_gib`); a test
sees 4 TiB free there, so whether a plan fits never depends on the machine running the tests, unless
it is marked `real_disk` (the tests of the disk check itself). A plan made in a subprocess (a Prefect
worker's flow run) sees the real disk: those tests plan the small default design (~39 GiB merged).
Outside tests/integration no test sees a running SLURM cluster (`SLURM_CONF` is unset), so
`backend: auto` means the local backend there whether or not CI has started one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fake_scheduler import FakeScheduler, launched_group, make_group
from tests.support.fakesite import FakeSite


@pytest.fixture(autouse=True)
def _no_slurm_outside_integration(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never reach the machine's SLURM: without SLURM_CONF, `auto` picks the local backend."""
    if "integration" not in Path(str(request.node.fspath)).parts:
        monkeypatch.delenv("SLURM_CONF", raising=False)


@pytest.fixture(autouse=True)
def _ample_free_disk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 TiB free under every output folder, unless the test is marked `real_disk`."""
    if request.node.get_closest_marker("real_disk") is None:
        monkeypatch.setattr("tasks.planning._verify.free_disk_gib", lambda folder: 4096.0)


@pytest.fixture
def fake_site(tmp_path: Path) -> FakeSite:
    """Fake site resources under tmp_path (models/, data/words_5L.json, evals/cap.py)."""
    return FakeSite(tmp_path)


@pytest.fixture
def fake_scheduler() -> FakeScheduler:
    """An in-memory scheduler with SLURM's states; job ids from 100."""
    return FakeScheduler()


@pytest.fixture
def run_group(tmp_path: Path) -> Path:
    """A set-up run group (plan -> deliver -> setup) over a fake site under tmp_path; nothing submitted."""
    return make_group(tmp_path)


@pytest.fixture
def launched(tmp_path: Path) -> tuple[Path, FakeScheduler]:
    """A set-up run group under tmp_path whose jobs were all submitted to a `FakeScheduler`."""
    return launched_group(tmp_path)

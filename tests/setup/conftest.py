"""Run groups the setup-experiment tests share (their helpers: tests/support/setup_groups.py).

`seed_group` (the seed's 2x2 example) and `full_group` (every feature and cluster option) are
planned and set up once for the whole tests/setup package, as they were once for the single
module these tests came from: tests read them, set them up again (idempotent) or preview into
another folder. `group` is a fresh planned, not yet set up, group per test, over the `fake_site`
fixture of tests/conftest.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

import tasks.setup._files as setup_files
from tasks.setup._experiment import set_up_group
from tests.support import fakesite
from tests.support.fakesite import FakeSite
from tests.support.setup_groups import planned, seed_design, write_file


@pytest.fixture(scope="package")
def seed_group(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed example, planned and set up (once for tests/setup)."""
    root = tmp_path_factory.mktemp("seed")
    group = planned(seed_design(root))
    set_up_group(group)
    return group


# Full-featured variant: 2 GPUs (distributed recipe), validation, best epoch, adapter-only
# checkpoints (evaluations merge first), every cluster option.
SITE_ENV = "site env.sh"
FULL_CLUSTER = {
    "account": "lab",
    "partition": "gpu",
    "qos": "normal",
    "constraint": "a100",
    "time_limit": "1-00:00:00",
    "extra_sbatch": ["--mail-type=END"],
    "max_queued_jobs": 5,
}


@pytest.fixture(scope="package")
def full_group(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full-featured variant, planned and set up (once for tests/setup)."""
    root = tmp_path_factory.mktemp("full")
    site_env = write_file(root / SITE_ENV, 'echo "site env loaded ${SOME_UNSET_VARIABLE}"\n')  # fails under set -u
    cluster = {
        **FULL_CLUSTER,
        "env_setup": ["module load cuda/12.1", f"source {shlex.quote(str(site_env))}", "export HF_HOME=/scratch/$USER/hf"],
    }
    data = fakesite.design(
        root,
        name="full",
        training={"epochs": 2, "validation": True, "validate_every_n_steps": 10, "save_adapter_weights_only": True},
        gpu={"count": 2, "memory_gb": 80},
        cluster=cluster,
    )
    data["evaluation"] = {**data["evaluation"], "epochs": "best", "limit": 5, "max_tokens": 16}
    data["paths"] = {**data["paths"], "scratch_dir": str(root / "node scratch")}
    group = planned(data, base=root)
    # the scripts' PATH must reach the recording stubs, not sweepflow's real tune/inspect:
    # the default job environment is a venv whose activate script changes nothing
    write_file(root / "stub-venv" / "bin" / "activate", "# a job environment that keeps the stubs on PATH\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(setup_files, "python_bin", lambda: root / "stub-venv" / "bin")
        set_up_group(group)
    return group


@pytest.fixture
def group(fake_site: FakeSite) -> Path:
    """A planned (not yet set up) 2 models x 2 ranks + controls group."""
    return planned(fake_site.design(), base=fake_site.root)

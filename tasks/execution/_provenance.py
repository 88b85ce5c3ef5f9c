"""Provenance of every fine-tune attempt, written into the run folder when it is submitted.

Reads: `{group}/experiment.yaml` (plan: dataset sha256 at planning time, seed), `runs_status.yaml`
(the attempt: job id, submission time, batch size, ...; the evaluation job ids chained to it), the
run's `finetune.yaml` as it is on disk at submission, the dataset file (sha256 again, cached by
size and mtime), `git rev-parse HEAD` / `git status --porcelain` of the sweepflow checkout, and the
installed package versions (`importlib.metadata`).
Writes: `{group}/{run}/provenance/attempt-<n>-job-<id>.yaml` (header from
`templates/state/provenance.yaml.j2`, body dumped by PyYAML), atomically. n counts the run's fine-tune
attempts from 1.

`tasks/execution/_submit.py` calls `record_provenance` right after each fine-tune is submitted (or adopted,
or resubmitted by a retry) and after each evaluation of a fine-tuned run is submitted: an
evaluation's job id is added to the file of the fine-tune attempt it belongs to. `packages` are
the versions of the environment that submitted the job (the login node's); `job_environment` is
what the job's own preflight found in the job's Python (`{run}/job_env-<job id>.json`), filled in
by sync once the fine-tune has ended (`refresh_job_environment`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import socket
import subprocess
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from tasks.core._files import atomic_write_text, dump_yaml, read_yaml
from tasks.core._repo import REPO_ROOT
from tasks.core._templating import render_template
from tasks.model._group import GroupRef, RunGroup
from tasks.model._plan import Plan
from tasks.model._status import Attempt, RunsStatus, RunStatus, utc_now

log = logging.getLogger(__name__)

PROVENANCE_DIR = "provenance"
JOBS = "jobs"  # the attempt's job ids and submission settings
OLD_JOBS = "slurm"  # JOBS' name in files written before the backend seam
REPO = REPO_ROOT
PACKAGES = ("torch", "torchtune", "torchao", "inspect-ai", "transformers", "accelerate", "prefect", "sweepflow")
GIT_CACHE_S = 30.0  # one launch submits many jobs: ask git at most this often
UNKNOWN = "unknown"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


_git_cache: tuple[float, dict[str, Any]] | None = None


def git_state() -> dict[str, Any]:
    """commit, dirty flag and changed files of the sweepflow checkout ("unknown" outside git)."""
    global _git_cache
    if _git_cache is not None and time.monotonic() - _git_cache[0] < GIT_CACHE_S:
        return dict(_git_cache[1])
    commit = _git("rev-parse", "HEAD")
    porcelain = _git("status", "--porcelain") if commit else None
    if commit is None or porcelain is None:
        state: dict[str, Any] = {"repo": str(REPO), "commit": UNKNOWN, "dirty": UNKNOWN, "changed_files": []}
    else:
        changed = [line[3:] for line in porcelain.splitlines() if line.strip()]
        state = {"repo": str(REPO), "commit": commit.strip(), "dirty": bool(changed), "changed_files": changed[:100]}
    _git_cache = (time.monotonic(), state)
    return dict(state)


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Python's version and each of `PACKAGES`' installed versions ("not installed" when absent)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str | None:
    """The file's sha256 (cached by size and mtime), or None when it cannot be read."""
    try:
        stat = path.stat()
        return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None


def _finetune_yaml(run_dir: Path) -> tuple[dict[str, Any], int | None]:
    """(the finetune.yaml section, the seed it sets)."""
    path = run_dir / "finetune.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return {"path": str(path), "error": f"cannot be read: {error}"}, None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        config = {"error": f"not valid YAML: {error}"}
    seed = config.get("seed") if isinstance(config, dict) else None
    return {"path": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest(), "config": config}, seed


def _dataset(plan: Plan, run_name: str) -> dict[str, Any]:
    path = Path(plan.run(run_name).params.dataset.path)
    planned = next((d.sha256 for d in plan.resources.datasets if Path(d.path) == path), None)
    now = file_sha256(path)
    return {"path": str(path), "sha256": now or "missing", "sha256_at_planning": planned or UNKNOWN,
            "unchanged_since_planning": bool(now and planned and now == planned)}


def _evaluation_ids(entry: RunStatus, since: str | None) -> dict[str, str]:
    """Evaluation job ids submitted for this fine-tune attempt (at or after its submission)."""
    ids = {}
    for key, stage in entry.evaluations.items():
        mine = [a for a in stage.attempts if since is None or (a.submitted or "") >= since]
        if mine:
            ids[key] = mine[-1].job_id
    return ids


def job_environment(run_dir: Path, job_id: str | None) -> dict[str, Any] | str:
    """What the fine-tune job's preflight recorded (its Python, packages, GPUs), or why there is nothing yet."""
    path = Path(run_dir) / f"job_env-{job_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"not recorded yet: the job's preflight writes {path.name} when it starts"
    keep = ("host", "python", "executable", "torch", "cuda", "gpus", "packages", "problems")
    return {key: data[key] for key in keep if key in data} if isinstance(data, dict) else f"{path.name}: not a record"


def refresh_job_environment(group: GroupRef, run: str, job_id: str) -> Path | None:
    """Fill `job_environment` into the provenance file of fine-tune job `job_id` (a failure is logged)."""
    try:
        group = RunGroup.of(group)
        entry = group.status.read().runs.get(run)
        attempts = entry.finetune.attempts if entry is not None else []
        number = next((i for i, a in enumerate(attempts, 1) if a.job_id == str(job_id)), None)
        if number is None:
            return None
        path = provenance_path(group.layout.root, run, number, str(job_id))
        existing = _read(path)
        if existing is None:
            return None
        existing["job_environment"] = job_environment(group.layout.run_dir(run), str(job_id))
        return atomic_write_text(path, _render(existing))
    except Exception as error:  # provenance must never stop a sync
        log.warning("job environment of %s job %s not recorded: %s", run, job_id, error)
        return None


def provenance_path(group_dir: Path, run: str, number: int, job_id: str) -> Path:
    """The provenance file of a run's fine-tune attempt `number` (from 1), job `job_id`."""
    return Path(group_dir) / run / PROVENANCE_DIR / f"attempt-{number}-job-{job_id}.yaml"


def _render(data: dict[str, Any]) -> str:
    return render_template("state/provenance.yaml.j2", data=data, body=dump_yaml(data))


def _attempt_record(plan: Plan, run: str, number: int, attempt: Attempt, entry: RunStatus) -> dict[str, Any]:
    run_dir = plan.group_dir / run
    finetune, seed = _finetune_yaml(run_dir)
    params = plan.run(run).params
    return {
        "run": run,
        "run_group": plan.run_group,
        "design_hash": plan.design_hash,
        "attempt": number,
        "written": utc_now(),
        "host": socket.gethostname(),
        "sweepflow": git_state(),
        "packages": package_versions(),
        "job_environment": job_environment(run_dir, attempt.job_id),
        "dataset": _dataset(plan, run),
        "seeds": {
            "training": seed if isinstance(seed, int) else params.seed,
            "training_in_plan": params.seed,
            "evaluation": "none: greedy decoding (do_sample=false)",
        },
        JOBS: {
            "finetune_job_id": attempt.job_id,
            "submitted": attempt.submitted,
            "previous_finetune_job_ids": [a.job_id for a in entry.finetune.attempts[: number - 1]],
            "evaluation_job_ids": _evaluation_ids(entry, attempt.submitted),
            "batch_size": attempt.batch_size,
            "gradient_accumulation_steps": attempt.gradient_accumulation_steps,
            "time_limit": attempt.time_limit,
            "exclude": attempt.exclude,
            "resume_epoch": attempt.resume_epoch,
            "adopted": bool(attempt.reason and attempt.reason.startswith("adopted")),
        },
        "finetune_yaml": finetune,
    }


def write_provenance(group: GroupRef, run: str, attempt_job_id: str, status: RunsStatus | None = None) -> Path | None:
    """Write (or refresh) the provenance file of the fine-tune attempt `attempt_job_id` of `run`.

    Given an evaluation's job id instead, the run's latest fine-tune attempt's file gets that
    evaluation's job id (written in full when it does not exist yet). Returns the file, or None
    for a base-model run (no fine-tune) or a job id the status does not know. `status`: the
    current runs_status.yaml content when the caller has it (else it is read).
    """
    group = RunGroup.of(group)
    plan = group.plan
    status = status or group.status.read()
    entry = status.runs.get(run)
    if entry is None or plan.run(run).is_control or not entry.finetune.attempts:
        return None
    attempts = entry.finetune.attempts
    number = next((i for i, a in enumerate(attempts, 1) if a.job_id == str(attempt_job_id)), None)
    if number is None:
        if not any(a.job_id == str(attempt_job_id) for s in entry.evaluations.values() for a in s.attempts):
            return None
        number = len(attempts)  # an evaluation: it belongs to the latest fine-tune attempt
        attempt = attempts[-1]
        path = provenance_path(plan.group_dir, run, number, attempt.job_id)
        existing = _read(path)
        if existing is not None:
            # a file written before the key was neutral says `slurm:`: renamed in place
            existing = {(JOBS if key == OLD_JOBS else key): value for key, value in existing.items()}
            existing.setdefault(JOBS, {})["evaluation_job_ids"] = _evaluation_ids(entry, attempt.submitted)
            return atomic_write_text(path, _render(existing))
    attempt = attempts[number - 1]
    path = provenance_path(plan.group_dir, run, number, attempt.job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, _render(_attempt_record(plan, run, number, attempt, entry)))


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = read_yaml(path)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def record_provenance(group: GroupRef, run: str, job_id: str, status: RunsStatus | None = None) -> Path | None:
    """`write_provenance` for submissions: a failure is logged, never raised (a job is queued)."""
    try:
        return write_provenance(group, run, job_id, status)
    except Exception as error:  # provenance must never stop a launch
        log.warning("provenance of %s job %s not written: %s", run, job_id, error)
        return None


__all__ = [
    "file_sha256", "git_state", "job_environment", "package_versions", "provenance_path", "record_provenance",
    "refresh_job_environment", "write_provenance",
]

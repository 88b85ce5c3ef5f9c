"""Every path and file name inside a run group: the folder contract all stages share.

Reads and writes nothing. A run group is one folder (`{output_dir}/{name}_{date}`):

    experiment.yaml  runs_plan.md  runs_status.yaml  measured_runs.yaml  summary.md  plots/
    results/          samples.csv  effects.csv  replicates.csv (the summary's tables, for pandas or R)
    README.md  submit_all.sh  .sweepflow/ (sweepflow's own state: caches, manifest, local jobs)
    <run>/            finetune.yaml  finetune<script>  setup_finetune.yaml  <job log>  logs/
                      epoch_<N>/  provenance/
    <run>/evaluations/          eval[_epoch_<N>]<script>  eval[_epoch_<N>].tasks.yaml  model_args.yaml
                                <job log>   (one job per evaluated checkpoint: all its tasks, one model load)
    <run>/evaluations/<task>/   task_args.yaml  logs/*.eval   (each task's own inputs and .eval logs)

A job's folder is where it is submitted from and where its job log lands: the run folder
(fine-tune) or the run's `evaluations/` (its evaluation jobs). The layout names a job by its
stem (`finetune`, `eval_epoch_1`); the backend's `JobNaming` (`tasks.model._job_naming`) adds
the script suffix `<script>` and names the `<job log>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tasks.model._job_naming import JobNaming
from tasks.model._plan import CheckpointJob, EvalJob

PLAN_FILE = "experiment.yaml"
PLAN_MD = "runs_plan.md"
STATUS_FILE = "runs_status.yaml"
MEASURED_FILE = "measured_runs.yaml"
SUMMARY_FILE = "summary.md"
PLOTS_DIR = "plots"
RESULTS_DIR = "results"
RESULT_TABLES = ("samples.csv", "effects.csv", "replicates.csv")  # per sample, per comparison, per cell
STATE_DIR = ".sweepflow"  # sweepflow's own state; nothing in it is a source of truth
EVALUATIONS_DIR = "evaluations"
LOGS_DIR = "logs"  # torchtune's metric logs (fine-tune), inspect's .eval logs (evaluation)
MODEL_ARGS = "model_args.yaml"  # inspect hf/ model arguments of a run's evaluation jobs
TASK_ARGS = "task_args.yaml"  # one task's arguments, in its own folder
PROVENANCE_DIR = "provenance"
FINETUNE_STEM = "finetune"  # the fine-tune job's script: finetune<script suffix>
FINETUNE_CONFIG = "finetune.yaml"  # torchtune's config, as `tune run` reads it
SETUP_RECORD = "setup_finetune.yaml"  # what the run was set up with (model, factors, parameters)
# runs_plan.md's Setup section (setup-experiment maintains it; a re-planned or extended plan keeps it)
SETUP_BEGIN = "<!-- sweepflow:setup:begin -->"
SETUP_END = "<!-- sweepflow:setup:end -->"
# A pilot (a few steps of each model's first run, before the sweep) is a run group of its own,
# `{output_dir}/{name}-pilot-{hash6}_{date}` (hash6: of the pilot's settings, so a pilot at other
# settings is another group): the planner learns from it as from any earlier group.
_PILOT_GROUP = re.compile(r"^(?P<design>.+)-pilot-[0-9a-f]{6}_\d{4}-\d{2}-\d{2}$")


def pilot_name(design_name: str, digest: str) -> str:
    """The design name of the pilot of design `design_name` whose settings hash to `digest`."""
    return f"{design_name}-pilot-{digest[:6]}"


def pilot_of(folder: Path) -> str | None:
    """The design name whose pilot run group `folder` is (it holds an experiment.yaml); None: not a pilot."""
    match = _PILOT_GROUP.match(folder.name)
    return match["design"] if match and (folder / PLAN_FILE).is_file() else None


def is_pilot_group(folder: Path) -> bool:
    """A pilot's run group folder."""
    return pilot_of(folder) is not None


def _eval_stem(job: EvalJob | CheckpointJob) -> str:
    return "eval" if job.epoch is None else f"eval_epoch_{job.epoch}"


def eval_script_name(job: EvalJob | CheckpointJob, naming: JobNaming) -> str:
    """The script of a checkpoint's evaluation job: `eval<suffix>` (a base model) or `eval_epoch_<N><suffix>`."""
    return naming.script(_eval_stem(job))


def eval_tasks_file_name(job: EvalJob | CheckpointJob) -> str:
    """The tasks a checkpoint's evaluation job runs: `eval[_epoch_<N>].tasks.yaml` beside its script."""
    return f"{_eval_stem(job)}.tasks.yaml"


def eval_job_name(job: EvalJob | CheckpointJob) -> str:
    """Job name of a checkpoint's evaluation job: `{run}__eval[_epoch_N]` (unique within the group)."""
    return f"{job.run}__{_eval_stem(job)}"


def epoch_dir_name(epoch: int | str) -> str:
    """`epoch_3`: the folder torchtune saves one epoch's checkpoint into."""
    return f"epoch_{epoch}"


def job_log(folder: Path, job_id: str, naming: JobNaming) -> Path:
    """The log of job `job_id`, submitted from `folder`, as its backend names it."""
    return folder / naming.log(job_id)


@dataclass(frozen=True)
class GroupLayout:
    """The paths of one run group folder (nothing is read until a caller opens one)."""

    root: Path

    @property
    def plan_file(self) -> Path:
        """`experiment.yaml`: the resolved plan every flow reads."""
        return self.root / PLAN_FILE

    @property
    def plan_md(self) -> Path:
        """`runs_plan.md`: the plan as the researcher reads and approves it."""
        return self.root / PLAN_MD

    @property
    def status_file(self) -> Path:
        """`runs_status.yaml`: the state of every stage."""
        return self.root / STATUS_FILE

    @property
    def measured_file(self) -> Path:
        """`measured_runs.yaml`: what the completed fine-tunes measured."""
        return self.root / MEASURED_FILE

    @property
    def summary_file(self) -> Path:
        """`summary.md`: what the run group found, and what it cost."""
        return self.root / SUMMARY_FILE

    @property
    def plots_dir(self) -> Path:
        """`plots/`: the summary's figures."""
        return self.root / PLOTS_DIR

    @property
    def results_dir(self) -> Path:
        """`results/`: the summary's tables as CSV (samples, effects, replicates)."""
        return self.root / RESULTS_DIR

    @property
    def state_dir(self) -> Path:
        """`.sweepflow/`: sweepflow's own state (caches, manifest, local jobs)."""
        return self.root / STATE_DIR

    @property
    def plan_cache(self) -> Path:
        """The JSON copy of the validated plan, valid only for experiment.yaml's exact bytes."""
        return self.state_dir / "experiment.cache.json"

    @property
    def manifest(self) -> Path:
        """What setup-experiment wrote (sha256 per file), so user edits can be told apart."""
        return self.state_dir / "manifest.yaml"

    @property
    def advance_lock(self) -> Path:
        """Held by whichever flow advances the group (sync, retries, submissions), one at a time."""
        return self.state_dir / "advance.lock"

    @property
    def local_jobs(self) -> Path:
        """The local backend's job records."""
        return self.state_dir / "local-jobs"

    def run_dir(self, run: str) -> Path:
        """A run's folder, where its fine-tune is submitted from."""
        return self.root / run

    def epoch_dir(self, run: str, epoch: int | str) -> Path:
        """The folder of one epoch's checkpoint of a run."""
        return self.run_dir(run) / epoch_dir_name(epoch)

    def train_logs_dir(self, run: str) -> Path:
        """The folder of a run's torchtune metric logs (`logs/`)."""
        return self.run_dir(run) / LOGS_DIR

    def provenance_dir(self, run: str) -> Path:
        """The folder of a run's provenance records, one file per fine-tune attempt."""
        return self.run_dir(run) / PROVENANCE_DIR

    def evals_dir(self, run: str) -> Path:
        """The folder of a run's evaluation jobs (scripts, tasks files, job logs), where they are submitted from."""
        return self.run_dir(run) / EVALUATIONS_DIR

    def eval_dir(self, run: str, task: str) -> Path:
        """The folder of a run's evaluations on one task: its arguments and its `.eval` logs."""
        return self.evals_dir(run) / task

    def eval_logs_dir(self, run: str, task: str) -> Path:
        """The folder of the inspect `.eval` logs of a run's evaluations on one task."""
        return self.eval_dir(run, task) / LOGS_DIR

    def stage_dir(self, run: str, task: str | None = None) -> Path:
        """Where a stage's job is submitted from: the run folder (fine-tune) or the run's `evaluations/`."""
        return self.run_dir(run) if task is None else self.evals_dir(run)

    def job_log(self, run: str, task: str | None, job_id: str, naming: JobNaming) -> Path:
        """The log of job `job_id` of a stage: the fine-tune (`task` None) or an evaluation task's job."""
        return job_log(self.stage_dir(run, task), job_id, naming)

    def job_dir(self, run: str, job: EvalJob | CheckpointJob | None) -> Path:
        """The submit folder of a fine-tune (`job` None) or a checkpoint's evaluation job."""
        return self.run_dir(run) if job is None else self.evals_dir(run)

    def job_files(self, run: str, job: EvalJob | CheckpointJob | None, naming: JobNaming) -> tuple[Path, Path]:
        """(script, submit folder) of a fine-tune (`job` None) or a checkpoint's evaluation job."""
        stem = FINETUNE_STEM if job is None else _eval_stem(job)
        return self.job_dir(run, job) / naming.script(stem), self.job_dir(run, job)


SITE_CHECKS_DIR = ".site_checks"  # under output_dir: site-check jobs, shared by every group there
SITE_CHECK_STEM = "site_check"  # a check job's script: site_check<script suffix>


@dataclass(frozen=True)
class SiteCheckLayout:
    """`{output_dir}/.site_checks/`: one folder per check job, and the record of recent passes.

    `passed.yaml` maps a shape fingerprint to the last passing check of that shape;
    `local_jobs/` holds the local backend's records of check jobs; each
    `<UTC time>-<shape>/` holds one job's `site_check<script>`, `site_check_spec.json`, its log,
    `job_env-<id>.json` (the preflight's findings) and `site_probe.json` (the probe's).
    """

    output_dir: Path

    @property
    def root(self) -> Path:
        """The folder of every site check under this output folder."""
        return self.output_dir / SITE_CHECKS_DIR

    @property
    def passed_file(self) -> Path:
        """The recent passes, by shape fingerprint."""
        return self.root / "passed.yaml"

    @property
    def local_jobs(self) -> Path:
        """The local backend's job records for check jobs."""
        return self.root / "local_jobs"

    def job_dir(self, stamp: str, slug: str) -> Path:
        """The folder one check job is submitted from."""
        return self.root / f"{stamp}-{slug}"

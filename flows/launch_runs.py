"""launch-runs: submit a run group's jobs, watch them, and retry failed fine-tunes by cause.

What it does
------------
1. **retry-decisions**: fine-tunes that failed in an earlier launch are decided first
   (`tasks.execution.submit.retry_failed`), so starting the flow again never leaves one behind.
2. **submit-pending**: every pending fine-tune is submitted with `sbatch`, and its
   evaluations chained to it with `--dependency=afterok:<job> --kill-on-invalid-dep=yes`
   (each starts as soon as its own checkpoint exists); base-model evaluations go at once.
   The cap on queued jobs and the stagger come from the cluster settings; each job id is
   written to runs_status.yaml the moment sbatch returns, and jobs already known to SLURM by
   name are adopted, never submitted twice. With `rerun_failed_evaluations`, failed or
   cancelled evaluations of an existing model are submitted again first; with
   `rerun_failed_finetunes`, fine-tunes that failed for good or were cancelled (cancel-runs),
   with their unfinished evaluations.
3. **watch** (unless `wait` is false): one `finetune-<run>` task per fine-tune waits for its
   job. When it fails, the cause decides (OOM: half the batch, twice the gradient
   accumulation; TIMEOUT: resume from the last epoch with more time; NODE_FAIL / PREEMPTED /
   BOOT_FAIL: resubmit without that node; a code or data error or a user's cancel: no
   retry). A resubmission re-chains the run's evaluations and the task raises, so the
   Prefect UI shows the task Retrying, with its run count. Meanwhile the flow syncs
   the status with ONE scheduler query per poll and submits what the cap held back.

How to run it
-------------
    prefect deployment run launch-runs/launch-runs --param group_dir=/abs/path/<run group> --watch

As Python: `from flows.launch_runs import launch_runs; launch_runs(group_dir)`.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows._common import TASK_OPTIONS, open_group, publish_status, sync_jobs_task
from tasks.backends import Backend
from tasks.execution import (
    DEFAULT_MAX_ATTEMPTS,
    LaunchReport,
    SyncReport,
    reopen_failed_evaluations,
    reopen_failed_finetunes,
    retry_failed,
    retry_run,
    submit_pending,
    sync_jobs,
)
from tasks.model import ClusterSettings, RunGroup


class FinetuneRetrying(Exception):
    """A fine-tune failed and was resubmitted with a remedy: Prefect retries its task."""


class FinetuneFailed(Exception):
    """A fine-tune failed for good (no retry for its cause, or out of attempts)."""


def _retryable(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except FinetuneRetrying:
        return True
    except Exception:
        return False
    return False


def _wait_terminal(group: RunGroup, run: str, poll_s: float, deadline: float) -> str:
    """Wait until the flow's sync loop marks this fine-tune finished; return its status."""
    while True:
        stage = group.status.read().stage(run)
        if stage.is_terminal:
            return stage.status
        if time.monotonic() > deadline:
            raise FinetuneFailed(f"{run}: still {stage.status} when launch-runs stopped waiting")
        time.sleep(poll_s)


def make_finetune_task(max_attempts: int) -> Any:
    """The `finetune-<run>` task: waits for its job, and on a failure retries it by cause."""

    @task(name="finetune", retries=max_attempts - 1, retry_delay_seconds=0, retry_condition_fn=_retryable,
          **TASK_OPTIONS)
    def finetune(group: RunGroup, run: str, backend: Backend, cluster: ClusterSettings, poll_s: float,
                 deadline: float) -> str:
        outcome = _wait_terminal(group, run, poll_s, deadline)
        if outcome == "completed":
            get_run_logger().info("%s: fine-tune completed", run)
            return outcome
        stage = group.status.read().stage(run)
        if outcome == "cancelled":  # by a user (or its job vanished): never retried
            raise FinetuneFailed(f"{run}: cancelled ({stage.reason or stage.slurm_state})")
        if stage.attempts and stage.attempts[-1].remedy is None:
            decision = retry_run(group, run, backend, cluster, max_attempts)
            if decision.job_id:
                raise FinetuneRetrying(
                    f"{run}: {stage.reason or stage.slurm_state}; {decision.remedy.description}; "
                    f"resubmitted as job {decision.job_id}"
                )
            if decision.error:
                raise FinetuneFailed(f"{run}: retry could not be submitted: {decision.error}")
            raise FinetuneFailed(f"{run}: {stage.reason or outcome}; {decision.remedy.description}")
        raise FinetuneFailed(f"{run}: {stage.reason or outcome}")

    return finetune


submit_pending_task = task(name="submit-pending", **TASK_OPTIONS)(submit_pending)


def _log_launch(report: LaunchReport) -> None:
    logger = get_run_logger()
    if report.submitted or report.adopted:
        logger.info("Submitted %d job(s), adopted %d already known to the scheduler",
                    len(report.submitted), len(report.adopted))
    if report.deferred:
        logger.info("%d job(s) wait for queue space (cap %d)", len(report.deferred), report.max_queued_jobs)
    for problem in report.failed:
        logger.error("sbatch refused %s/%s: %s", problem.run, problem.stage, problem.reason)
    for job in report.withdrawn:
        logger.warning("%s/%s was cancelled while job %s was being submitted: that job was cancelled too",
                       job.run, job.stage, job.job_id)


def _catch_up(group: RunGroup, backend: Backend, max_attempts: int, rerun_finetunes: bool,
              rerun_evaluations: bool) -> None:
    """Before submitting: sync, decide the retries an earlier launch left open, reopen on request."""
    logger = get_run_logger()
    sync_jobs(group, backend)
    for outcome in retry_failed(group, backend, group.cluster, max_attempts):
        logger.info("%s: %s%s", outcome.run, outcome.remedy.description,
                    f" -> job {outcome.job_id}" if outcome.job_id else "")
    if rerun_finetunes:
        logger.info("Fine-tunes to run again: %s", ", ".join(reopen_failed_finetunes(group)) or "none")
    if rerun_evaluations:
        logger.info("Evaluations to run again: %s", ", ".join(reopen_failed_evaluations(group)) or "none")


def _watch(group: RunGroup, backend: Backend, launch: LaunchReport, futures: list[Any], poll_seconds: float,
           deadline: float, max_wait_hours: float) -> SyncReport:
    """Sync once per poll and submit what the queue cap held back, until nothing can move any more."""
    while True:
        report = sync_jobs_task(group, backend)
        publish_status(group, report)
        if not launch.complete:
            launch = submit_pending_task(group, backend, group.cluster)
            _log_launch(launch)
        finetunes_done = all(f.state.is_final() for f in futures)
        in_flight = report.counts.get("submitted", 0) + report.counts.get("running", 0)
        # done, or nothing left that could still move (e.g. evaluations of a fine-tune sbatch refused)
        if finetunes_done and (report.done >= report.total or (in_flight == 0 and launch.complete)):
            return report
        if time.monotonic() > deadline:
            get_run_logger().warning("Stopped waiting after %.1f h; sync-status keeps runs_status.yaml true",
                                     max_wait_hours)
            return report
        time.sleep(poll_seconds)


@flow(name="launch-runs", persist_result=False, log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=64))  # type: ignore[arg-type]  # Prefect 3.8 annotates it too narrowly
def launch_runs(
    group_dir: str,
    wait: bool = True,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    poll_seconds: float = 10.0,
    max_wait_hours: float = 72.0,
    rerun_failed_evaluations: bool = False,
    rerun_failed_finetunes: bool = False,
) -> dict[str, int]:
    """Submit pending jobs of a set-up run group; with `wait`, watch and retry until all finish.

    Args:
        group_dir: the run group folder (set up by setup-experiment).
        wait: keep watching (retries need it); false: submit and return.
        max_attempts: submissions per fine-tune, the first included.
        poll_seconds: time between status syncs (one scheduler query each).
        max_wait_hours: stop waiting after this long (jobs keep running; sync-status goes on).
        rerun_failed_evaluations: submit again the failed or cancelled evaluations whose model
            exists (a completed fine-tune, or a base model); earlier attempts stay on record.
        rerun_failed_finetunes: submit again, with their unfinished evaluations, the fine-tunes
            that failed for good (a code or data error you have fixed since, or out of
            attempts) or were cancelled; each gets a fresh `max_attempts`. Fine-tunes whose
            failure has a remedy (OOM, TIMEOUT, node failure) are retried with it first.

    Returns:
        How many stages are in each state at the end.
    """
    logger = get_run_logger()
    group, backend = open_group(group_dir)
    logger.info("Backend: %s", backend.name)
    _catch_up(group, backend, max_attempts, rerun_failed_finetunes, rerun_failed_evaluations)
    launch = submit_pending_task(group, backend, group.cluster)
    _log_launch(launch)
    if not wait:
        report = sync_jobs_task(group, backend)
        publish_status(group, report)
        return dict(report.counts)

    deadline = time.monotonic() + max_wait_hours * 3600
    finetune = make_finetune_task(max_attempts)
    futures = [
        finetune.with_options(task_run_name=f"finetune-{run.name}").submit(
            group, run.name, backend, group.cluster, min(poll_seconds, 5.0), deadline
        )
        for run in group.plan.finetune_runs
    ]
    report = _watch(group, backend, launch, futures, poll_seconds, deadline, max_wait_hours)
    for future in (f for f in futures if f.state.is_failed()):
        logger.error(str(future.state.message or future.state.name))
    logger.info("Done: " + ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())))
    return dict(report.counts)

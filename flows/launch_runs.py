"""launch-runs: submit a run group's jobs, then (with `wait`) advance the group until every stage ends.

What it does
------------
1. **reopen** (on request): with `rerun_failed_evaluations`, failed or cancelled evaluations
   of an existing model go back to pending; with `rerun_failed_finetunes`, fine-tunes that
   failed for good or were cancelled (cancel-runs), with their unfinished evaluations.
2. **advance**, once per poll (`tasks.execution.advance`, the same step the scheduled
   advance-runs deployment takes, so the two never repeat each other's work):
   - sync: ONE scheduler query for every unfinished job;
   - retry failed fine-tunes by cause (OOM: half the batch, twice the gradient accumulation;
     TIMEOUT: resume from the last epoch with more time; NODE_FAIL / PREEMPTED / BOOT_FAIL:
     resubmit without that node; a code or data error or a user's cancel: no retry), each
     decision the task `retry-<run>-<cause>-attempt<N>`, re-chaining the run's evaluations;
   - end what can no longer run (evaluations of a fine-tune that failed for good: cancelled,
     with the reason);
   - submit what the queue cap allows: fine-tunes with their evaluations chained by
     `--dependency=afterok:<job> --kill-on-invalid-dep=yes`, base-model evaluations at once,
     each job id on disk before the next sbatch, jobs already known to SLURM by name adopted.
   Each fine-tune attempt that ends is the task `finetune-<run>-attempt<N>`; progress and the
   runs table are two artifacts, updated in place.
3. Without `wait`, it returns after the first step: with the advance-runs deployment
   scheduled (prefect.yaml), the sweep still finishes, retries included.

How to run it
-------------
    prefect deployment run launch-runs/launch-runs --param group_dir=/abs/path/<run group> --watch

As Python: `from flows.launch_runs import launch_runs; launch_runs(group_dir)`.
"""

from __future__ import annotations

from flows._launch import launch_runs

__all__ = ["launch_runs"]

"""Why a job ended badly (`classify_failure`), from its JobInfo and the tail of its log.

Reads: nothing (callers pass the end of the job's log, `tasks.core._files.read_log_tail`). Writes: nothing.

Rules, first match wins (the recorded SLURM outputs in tests/fixtures/slurm back each one):
  not failed/cancelled (and not stuck on a dependency)           -> None
  Reason DependencyNeverSatisfied                                -> "dependency"
  OUT_OF_MEMORY                                                  -> "oom"
  TIMEOUT, DEADLINE                                              -> "timeout"
  NODE_FAIL, PREEMPTED, BOOT_FAIL                                -> "node"
  CANCELLED: "CANCELLED by <uid>", or any reason given           -> "cancelled"
             plain "CANCELLED", reason None or Dependency, never on a node -> "dependency"
      (sacct prints "by <uid>" whenever a user cancelled; only slurmctld itself cancels
      without it, and for a job that never ran that is --kill-on-invalid-dep. sacct does not
      keep the DependencyNeverSatisfied reason: it shows None (sacct_X_P_n.txt, job 6) or
      Dependency (seen live), whichever reason it last stored)
  log tail has the preflight's "sweepflow preflight: FAILED:" line -> "environment"
  log tail says the disk is full ("No space left on device", ENOSPC, quota exceeded) -> "disk"
  log tail shows running out of memory (CUDA/torch OOM, the cgroup "oom-kill" line, the
  jobacct "exceeded memory limit" kill, which SLURM reports as FAILED/JobLaunchFailure) -> "oom"
  Reason JobLaunchFailure or exit signal 53, and no log at all   -> "launch"
  anything else                                                  -> "error"
"""

from __future__ import annotations

import re

from tasks.backends._base import FailureCause, JobInfo
from tasks.backends.slurm._states import NEVER_RUNS, state_of
from tasks.core.preflight import FAILED_MARK

OOM_IN_LOG = re.compile(
    r"CUDA out of memory|torch\.OutOfMemoryError|torch\.cuda\.OutOfMemoryError|OutOfMemoryError"
    r"|oom-kill|exceeded memory limit|Exceeded job memory limit|out-of-memory handler",
    re.IGNORECASE,
)

DISK_FULL_IN_LOG = re.compile(r"No space left on device|\bENOSPC\b|Disk quota exceeded|\bEDQUOT\b", re.IGNORECASE)


def classify_failure(info: JobInfo, log_tail: str = "") -> FailureCause | None:
    """The cause of a failed or cancelled job; None for a job that did not fail."""
    if info.reason == NEVER_RUNS:
        return "dependency"
    if info.status not in {"failed", "cancelled"}:
        return None
    state = state_of(info.raw_state)
    if state.cause is not None:  # OUT_OF_MEMORY, TIMEOUT, NODE_FAIL, ... (the states table)
        return state.cause
    if state.status == "cancelled":
        never_ran = info.node is None and not info.elapsed_s
        if " by " not in info.raw_state and info.reason in (None, "Dependency") and never_ran:
            return "dependency"
        return "cancelled"
    if FAILED_MARK in (log_tail or ""):
        return "environment"
    if DISK_FULL_IN_LOG.search(log_tail or ""):
        return "disk"
    if OOM_IN_LOG.search(log_tail or ""):
        return "oom"
    signal_53 = (info.exit_code or "").endswith(":53")
    if (info.reason == "JobLaunchFailure" or signal_53) and not (log_tail or "").strip():
        return "launch"
    return "error"

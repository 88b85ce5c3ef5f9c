"""launch-runs', sync-status', cancel-runs' and rerun-runs' domain: submit, sync, retries, cancel, reopen, re-run.

Layer 6, the top (imports every layer below; nothing imports it but flows).
"""

from tasks.execution._advance import (
    AdvanceReport,
    EndedAttempt,
    GroupScan,
    RetryRequest,
    advance,
    groups_with_unfinished_work,
    scan_groups,
)
from tasks.execution._cancel import CancelReport, cancel_stages
from tasks.execution._reopen import reopen_failed_evaluations, reopen_failed_finetunes
from tasks.execution._rerun import RerunReport, rerun_stages
from tasks.execution._retries import RetryOutcome, apply_remedy, plan_retry, retry_failed, retry_run
from tasks.execution._retry_policy import DEFAULT_MAX_ATTEMPTS, Remedy, decide
from tasks.execution._status_text import status_text
from tasks.execution._submit import LaunchReport, submit_pending
from tasks.execution._sync import SyncReport, sync_jobs, tally

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "AdvanceReport",
    "CancelReport",
    "EndedAttempt",
    "GroupScan",
    "LaunchReport",
    "Remedy",
    "RerunReport",
    "RetryOutcome",
    "RetryRequest",
    "SyncReport",
    "advance",
    "apply_remedy",
    "cancel_stages",
    "decide",
    "groups_with_unfinished_work",
    "plan_retry",
    "reopen_failed_evaluations",
    "reopen_failed_finetunes",
    "rerun_stages",
    "retry_failed",
    "retry_run",
    "scan_groups",
    "status_text",
    "submit_pending",
    "sync_jobs",
    "tally",
]

"""Send finished-but-failed work back to the queue, on the researcher's request.

Reads/writes: `{group}/runs_status.yaml` (one locked update). The next `submit_pending`
(launch-runs) submits what was reopened; earlier attempts stay on record.

- `reopen_failed_evaluations`: failed or cancelled evaluations whose model exists (a base
  model, or a fine-tune that completed).
- `reopen_failed_finetunes`: fine-tunes that failed for good (a code or data error, out of
  attempts) or were cancelled, after the researcher fixed the cause; their evaluations that
  did not complete go back to pending with them. The last attempt is marked `reopened`, so the
  retry budget (`max_attempts`) starts again from the next submission.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from tasks.core._errors import SweepflowError
from tasks.model._group import GroupRef, RunGroup
from tasks.model._status import RunsStatus, StageStatus, utc_now

REOPENABLE = ("failed", "cancelled")


def _reopen(stage: StageStatus, now: str) -> None:
    stage.mark("pending", now=now, job_id=None, output=None, reason=f"reopened after: {stage.reason or stage.status}")


def reopen_failed_evaluations(group: GroupRef, now: Callable[[], str] = utc_now) -> list[str]:
    """Failed or cancelled evaluations of an existing model back to pending; the `run/key`s reopened."""
    store = RunGroup.of(group).status
    reopened: set[str] = set()  # a set: update() may apply the change more than once

    def reopen(current: RunsStatus) -> None:
        for run, entry in current.runs.items():
            if entry.finetune.status not in ("completed", "skipped"):
                continue
            for key, stage in entry.evaluations.items():
                if stage.status in REOPENABLE:
                    _reopen(stage, now())
                    reopened.add(f"{run}/{key}")

    store.update(reopen, force=True)
    return sorted(reopened)


def reopen_failed_finetunes(
    group: GroupRef, runs: Collection[str] | None = None, now: Callable[[], str] = utc_now
) -> list[str]:
    """Set failed or cancelled fine-tunes back to pending with their unfinished evaluations.

    All of them, or those named in `runs`; returns the runs reopened. Unknown names: `SweepflowError`.
    """
    store = RunGroup.of(group).status
    wanted = set(runs) if runs is not None else None
    if wanted is not None:
        unknown = sorted(wanted - set(store.read().runs))
        if unknown:
            raise SweepflowError(f"{store.path}: no run named {', '.join(unknown)} in this run group")
    reopened: set[str] = set()

    def reopen(current: RunsStatus) -> None:
        for run, entry in current.runs.items():
            if (wanted is not None and run not in wanted) or entry.finetune.status not in REOPENABLE:
                continue
            if entry.finetune.attempts:
                entry.finetune.attempts[-1].reopened = True
            _reopen(entry.finetune, now())
            for stage in entry.evaluations.values():
                if stage.status != "completed":
                    _reopen(stage, now())
            reopened.add(run)

    store.update(reopen, force=True)
    return sorted(reopened)

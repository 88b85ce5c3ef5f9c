"""Re-run chosen runs or stages on request (finished or failed), with the reason on record.

Reads: `{group}/experiment.yaml`; reads and writes `{group}/runs_status.yaml` (one locked update)
and, for a fine-tune that a TIMEOUT retry had set to resume, its `finetune.yaml` and
`setup_finetune.yaml` (rendered again to train from the start). The next advance step
(launch-runs, or the scheduled advance-runs) submits what was reopened.

Unlike `reopen.py` (failed or cancelled work, after a fix), this re-runs any stage that is not
queued or running: a completed fine-tune is trained again (with all its evaluations: a new
checkpoint), a completed evaluation is scored again. Every earlier attempt stays on record and
the last one is marked `reopened` (the retry budget starts again); the stage's `reason` says
`re-run requested: <reason> (was <status>)`. A dropped run is not re-run: extend the group with it
back instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from pydantic import BaseModel

from tasks.core._errors import SweepflowError
from tasks.model._group import GroupRef, RunGroup
from tasks.model._layout import FINETUNE_CONFIG, SETUP_RECORD
from tasks.model._plan import Plan, Run
from tasks.model._status import FINETUNE, RunsStatus, StageStatus, utc_now
from tasks.setup import finetune_files, materialize

IN_FLIGHT = ("submitted", "running")
ALL_EVALUATIONS = "evaluations"


class RerunReport(BaseModel):
    """What a re-run request reopened (`run/key`), and why."""

    reason: str
    reopened: list[str]
    rerendered: list[str] = []  # fine-tunes whose config was rendered again (a resume point cleared)


def _keys(run: Run, stages: Collection[str] | None) -> list[str]:
    """The stage keys of `run` that `stages` names; a fine-tune brings all its evaluations (a new checkpoint)."""
    evals = [job.key for job in run.evaluations]
    if stages is None or (FINETUNE in stages and not run.is_control):
        return ([] if run.is_control else [FINETUNE]) + evals
    chosen: list[str] = []
    for name in stages:
        if name == ALL_EVALUATIONS:
            chosen += evals
        elif name != FINETUNE:
            chosen += [job.key for job in run.evaluations if name in (job.key, job.task)]
    return list(dict.fromkeys(chosen))


def _unknown_stages(plan: Plan, runs: list[Run], stages: Collection[str] | None) -> list[str]:
    if stages is None:
        return []
    known = {FINETUNE, ALL_EVALUATIONS} | {k for r in runs for j in r.evaluations for k in (j.key, j.task)}
    return sorted(set(stages) - known)


def chosen_stages(plan: Plan, runs: Collection[str] | None, stages: Collection[str] | None) -> list[tuple[str, str]]:
    """(run, key) of every stage a request names; `SweepflowError` naming unknown, dropped or empty choices."""
    dropped = {d.run.name for d in plan.dropped_runs}
    names = [r.name for r in plan.runs] if runs is None else list(runs)
    if gone := sorted(set(names) & dropped):
        raise SweepflowError(f"{', '.join(gone)}: dropped from this run group's design; extend the group with "
                             "it back (plan-runs) rather than re-running it")
    if unknown := sorted(set(names) - {r.name for r in plan.runs}):
        raise SweepflowError(f"no run named {', '.join(unknown)} in {plan.run_group}")
    chosen_runs = [plan.run(n) for n in names]
    if bad := _unknown_stages(plan, chosen_runs, stages):
        raise SweepflowError(f"no stage named {', '.join(bad)}: name finetune, evaluations, a task or an "
                             "evaluation key (task_epoch_N)")
    found = [(run.name, key) for run in chosen_runs for key in _keys(run, stages)]
    if not found:
        raise SweepflowError("the request names no stage to re-run")
    return found


def _reopen(stage: StageStatus, reason: str, now: str) -> None:
    if stage.attempts:
        stage.attempts[-1].reopened = True
    if stage.overrides is not None:
        stage.overrides = stage.overrides.model_copy(update={"resume_epoch": None})
    stage.mark("pending", now=now, job_id=None, output=None, scheduler_state=None, exit_code=None,
               reason=f"re-run requested: {reason} (was {stage.status})")


def rerun_stages(
    group: GroupRef, runs: Collection[str] | None = None, stages: Collection[str] | None = None,
    reason: str = "", now: Callable[[], str] = utc_now,
) -> RerunReport:
    """Send the named runs' stages (all runs, all stages when unnamed) back to pending, with `reason`.

    `stages`: `finetune` (with its evaluations), `evaluations`, a task name, or an evaluation key.
    Refused (nothing changed) when the reason is empty or a chosen stage is queued or running.
    """
    if not reason.strip():
        raise SweepflowError("say why the stages are re-run (reason): it is recorded in runs_status.yaml")
    group = RunGroup.of(group)
    chosen = chosen_stages(group.plan, runs, stages)
    status = group.status.read()
    busy = [f"{r}/{k}" for r, k in chosen if status.stage(r, k).status in IN_FLIGHT]
    if busy:
        raise SweepflowError(f"{', '.join(busy)}: queued or running; cancel first (cancel-runs), then re-run")
    resumed = sorted({r for r, k in chosen
                      if k == FINETUNE and (o := status.stage(r).overrides) and o.resume_epoch is not None})

    def reopen(current: RunsStatus) -> None:
        for run, key in chosen:
            stage = current.stage(run, key)
            if stage.status not in ("pending", *IN_FLIGHT):
                _reopen(stage, reason.strip(), now())

    group.status.update(reopen, force=True)
    for name in resumed:  # the config resumed from a checkpoint: train from the start again
        overrides = group.status.read().stage(name).overrides
        rendered = finetune_files(group.plan, group.plan.run(name), group.cluster, overrides)
        wanted = {f"{name}/{FINETUNE_CONFIG}", f"{name}/{SETUP_RECORD}"}
        materialize(group.root, {k: v for k, v in rendered.items() if k in wanted}, overwrite_edits=True)
    return RerunReport(reason=reason.strip(), reopened=[f"{r}/{k}" for r, k in chosen], rerendered=resumed)


__all__ = ["RerunReport", "chosen_stages", "rerun_stages"]

"""What to do about a failed fine-tune, decided by why it failed, and applying that decision.

Reads: the plan (`experiment.yaml`), `runs_status.yaml` (attempts, overrides) and the run
folder (`epoch_N/`, `recipe_state/`, to know what a resume can start from).
Writes (`apply_remedy`): the run's `finetune.yaml` and `setup_finetune.yaml` (atomically, with
`.sweepflow/manifest.yaml` updated so setup-experiment does not take them for user edits; a
user-edited file is backed up first) and the run's `finetune.overrides` in runs_status.yaml,
so a later setup-experiment renders the same values.

Policy (`decide`), by FailureCause:
- oom: divide the batch size by its smallest prime factor (halve it when even) and multiply
  gradient accumulation by the same, so batch x accumulation (the effective batch) is
  unchanged; restart from scratch. Batch size 1: not retried.
- timeout: more time (`--time`, x2) and resume after the last saved epoch (if any).
- node (NODE_FAIL, PREEMPTED, BOOT_FAIL): resubmit as is, excluding the failed node.
- cancelled (by a user), dependency, launch, error (code or data): never retried.
At most `max_attempts` submissions per fine-tune (the first one included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tasks.core.errors import SweepflowError
from tasks.core.durations import scale_duration
from tasks.core.files import read_yaml
from tasks.backends import FailureCause, JobOverrides
from tasks.model.cluster import ClusterSettings, cluster_settings
from tasks.model.layout import STATUS_FILE
from tasks.model.plan import Plan
from tasks.model.plan_file import load_plan
from tasks.model.status import FinetuneOverrides, RunsStatus, StageStatus, StatusStore
from tasks.setup.files import finetune_files
from tasks.setup.materialize import FileChange, materialize
from tasks.training.overrides import resumable_epoch

RemedyKind = Literal["resubmit_smaller_batch", "resume_more_time", "resubmit_exclude_node", "none"]
DEFAULT_MAX_ATTEMPTS = 3
TIME_MULTIPLIER = 2.0
_NOT_RETRIED: dict[str, str] = {
    "cancelled": "cancelled by a user: never retried",
    "dependency": "never ran (its dependency failed): not retried",
    "launch": "the job could not start (launch failure): fix the cause and launch again; not retried",
    "error": "code or data error (see the job log): not retried",
}


class RetryContext(BaseModel):
    """What `decide` needs to know about the run as it was last submitted."""

    batch_size: int
    gradient_accumulation_steps: int
    time_limit: str  # the limit the failed attempt ran with
    default_time_limit: str  # the cluster's fine-tune limit (the script's #SBATCH --time)
    node: str | None = None  # where the failed attempt ran
    excluded_nodes: list[str] = Field(default_factory=list)  # by earlier retries
    resume_epoch: int | None = None  # the config currently resumes after this epoch
    resumable_epoch: int | None = None  # last epoch on disk a resume can start after
    epochs: int = 1


class Remedy(BaseModel):
    """The decision, and the complete settings of the next attempt when there is one."""

    kind: RemedyKind
    cause: str | None = None
    description: str
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    time_multiplier: float = 1.0
    time_limit: str | None = None  # sbatch --time for the next attempt (None: the script's)
    exclude_nodes: list[str] = Field(default_factory=list)
    resume_epoch: int | None = None

    @property
    def retry(self) -> bool:
        return self.kind != "none"

    def overrides(self) -> JobOverrides:
        """What the next submission changes (the backend renders it; it wins over the script's settings)."""
        return JobOverrides(time_limit=self.time_limit, exclude_nodes=list(self.exclude_nodes))


# ---------------------------------------------------------------------------- the policy


def _smallest_prime_factor(n: int) -> int:
    factor = 2
    while factor * factor <= n:
        if n % factor == 0:
            return factor
        factor += 1
    return n


def decide(cause: FailureCause | str | None, attempts_so_far: int, max_attempts: int, ctx: RetryContext) -> Remedy:
    """The remedy for a fine-tune that failed with `cause` after `attempts_so_far` submissions."""
    bs, ga = ctx.batch_size, ctx.gradient_accumulation_steps
    carry_time = ctx.time_limit if ctx.time_limit != ctx.default_time_limit else None
    same = {"batch_size": bs, "gradient_accumulation_steps": ga, "exclude_nodes": list(ctx.excluded_nodes)}
    if cause is None:
        return Remedy(kind="none", description="no failure cause known: not retried")
    if cause in _NOT_RETRIED:
        return Remedy(kind="none", cause=cause, description=_NOT_RETRIED[cause])
    if cause not in ("oom", "timeout", "node"):
        return Remedy(kind="none", cause=cause, description=f"unknown failure cause {cause!r}: not retried")
    if attempts_so_far >= max_attempts:
        return Remedy(kind="none", cause=cause, description=f"{cause}: not retried, {attempts_so_far} of {max_attempts} attempts made")
    if cause == "oom":
        if bs <= 1:
            return Remedy(
                kind="none", cause=cause,
                description="OOM at batch size 1: cannot be reduced further (lower max_seq_len or use a larger GPU); not retried",
            )
        factor = _smallest_prime_factor(bs)
        new_bs, new_ga = bs // factor, ga * factor
        return Remedy(
            kind="resubmit_smaller_batch", cause=cause, batch_size=new_bs, gradient_accumulation_steps=new_ga,
            time_limit=carry_time, exclude_nodes=list(ctx.excluded_nodes),
            description=f"OOM: batch {bs}→{new_bs}, grad accumulation {ga}→{new_ga} (effective batch {bs * ga} unchanged)",
        )
    if cause == "timeout":
        new_time = scale_duration(ctx.time_limit, TIME_MULTIPLIER)
        where = (f"resume after epoch_{ctx.resumable_epoch}" if ctx.resumable_epoch is not None
                 else "no finished epoch to resume from, restart")
        return Remedy(
            kind="resume_more_time", cause=cause, time_multiplier=TIME_MULTIPLIER, time_limit=new_time,
            resume_epoch=ctx.resumable_epoch, **same,
            description=f"TIMEOUT: {where} with time {ctx.time_limit}→{new_time}",
        )
    excluded = list(ctx.excluded_nodes)
    if ctx.node and ctx.node not in excluded:
        excluded.append(ctx.node)
    resume = ctx.resumable_epoch if ctx.resume_epoch is not None else None  # as is: resume only if it did
    what = f"excluding {ctx.node}" if ctx.node else "failed node unknown, none excluded"
    return Remedy(
        kind="resubmit_exclude_node", cause=cause, batch_size=bs, gradient_accumulation_steps=ga,
        time_limit=carry_time, exclude_nodes=excluded, resume_epoch=resume,
        description=f"node failure: resubmit as is, {what}",
    )


# ---------------------------------------------------------------------------- context and application


def _cluster_for(plan: Plan, run_name: str, cluster: ClusterSettings | None) -> ClusterSettings:
    """The given settings, or the design's, or (a block name) the device recorded in setup_finetune.yaml."""
    if cluster is not None:
        return cluster
    if not isinstance(plan.design.cluster, str):
        return cluster_settings(plan.design)
    setup = read_yaml(plan.group_dir / run_name / "setup_finetune.yaml")
    return ClusterSettings(device=setup.get("device", "cuda") if isinstance(setup, dict) else "cuda")


def retry_context(
    plan: Plan, status: RunsStatus, run_name: str, cluster: ClusterSettings
) -> RetryContext:
    """The settings the last attempt ran with (else the plan's with the run's overrides).

    Read from the attempt, not from the current overrides, so deciding again after a retry that
    was applied but not submitted (sbatch unreachable) gives the same remedy.
    """
    run = plan.run(run_name)
    stage = status.stage(run_name)
    overrides = stage.overrides or FinetuneOverrides()
    last = stage.attempts[-1] if stage.attempts else None
    if last is not None and last.batch_size is not None:
        overrides = FinetuneOverrides(
            batch_size=last.batch_size, gradient_accumulation_steps=last.gradient_accumulation_steps, resume_epoch=last.resume_epoch
        )
    excluded: list[str] = []
    for attempt in stage.attempts:
        for node in (attempt.exclude or "").split(","):
            if node and node not in excluded:
                excluded.append(node)
    return RetryContext(
        batch_size=overrides.batch_size or run.params.batch_size or 1,
        gradient_accumulation_steps=overrides.gradient_accumulation_steps or run.params.gradient_accumulation_steps,
        time_limit=(last.time_limit if last and last.time_limit else cluster.time_limit),
        default_time_limit=cluster.time_limit,
        node=last.node if last else None,
        excluded_nodes=excluded,
        resume_epoch=overrides.resume_epoch,
        resumable_epoch=resumable_epoch(plan.group_dir / run_name),
        epochs=run.params.epochs,
    )


def plan_retry(
    group_dir: str | Path, run_name: str, cluster: ClusterSettings | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> Remedy:
    """`decide` for a failed fine-tune, from its last attempt's cause (set by sync-status)."""
    plan = load_plan(group_dir)
    status = StatusStore(plan.group_dir / STATUS_FILE).read()
    stage = status.stage(run_name)
    if stage.status != "failed":
        return Remedy(kind="none", description=f"fine-tune is {stage.status}, not failed: nothing to retry")
    cause = stage.attempts[-1].cause if stage.attempts else None
    ctx = retry_context(plan, status, run_name, _cluster_for(plan, run_name, cluster))
    return decide(cause, max(attempts_counted(stage), 1), max_attempts, ctx)


def attempts_counted(stage: StageStatus) -> int:
    """Attempts that count against `max_attempts`: those since the researcher last reopened the stage."""
    last_reopen = max((i for i, a in enumerate(stage.attempts) if a.reopened), default=-1)
    return len(stage.attempts) - last_reopen - 1


def remedy_overrides(plan: Plan, run_name: str, remedy: Remedy) -> FinetuneOverrides | None:
    """The overrides a remedy leaves the run with (None when it runs exactly as planned)."""
    params = plan.run(run_name).params
    overrides = FinetuneOverrides(
        batch_size=remedy.batch_size if remedy.batch_size not in (None, params.batch_size) else None,
        gradient_accumulation_steps=(
            remedy.gradient_accumulation_steps
            if remedy.gradient_accumulation_steps not in (None, params.gradient_accumulation_steps) else None
        ),
        resume_epoch=remedy.resume_epoch,
    )
    return overrides if overrides.model_dump() else None


def apply_remedy(
    group_dir: str | Path, run_name: str, remedy: Remedy, cluster: ClusterSettings | None = None
) -> list[FileChange]:
    """Re-render the run's finetune.yaml / setup_finetune.yaml for the remedy; record the overrides.

    Returns what happened to each file (`overwrite-edit` with a backup when a user had edited it).
    """
    if not remedy.retry:
        raise SweepflowError(f"{run_name}: remedy {remedy.kind!r} changes nothing ({remedy.description})")
    plan = load_plan(group_dir)
    run = plan.run(run_name)
    overrides = remedy_overrides(plan, run_name, remedy)
    rendered = finetune_files(plan, run, _cluster_for(plan, run_name, cluster), overrides)
    wanted = {f"{run_name}/finetune.yaml", f"{run_name}/setup_finetune.yaml"}
    changes = materialize(plan.group_dir, {k: v for k, v in rendered.items() if k in wanted}, overwrite_edits=True)

    def record(status: RunsStatus) -> None:
        status.stage(run_name).overrides = overrides

    StatusStore(plan.group_dir / STATUS_FILE).update(record)
    return changes

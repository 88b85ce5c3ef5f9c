"""What to do about a failed fine-tune, decided by why it failed: a pure decision table.

Reads and writes nothing: `tasks.execution._retries` gathers the `RetryContext` from the run
group, calls `decide`, and applies the `Remedy`.

Policy (`decide`), by FailureCause:
- oom: divide the batch size by its smallest prime factor (halve it when even) and multiply
  gradient accumulation by the same, so batch x accumulation (the effective batch) is
  unchanged; restart from scratch. Batch size 1: not retried.
- timeout: more time (`--time`, x2, never above the partition's `max_time_limit`) and resume
  after the last saved epoch (if any). One already at the maximum resumes with the same time
  when an epoch is on disk to resume from, and is not retried when none is (it would time out
  again at the same point).
- node (NODE_FAIL, PREEMPTED, BOOT_FAIL): resubmit as is, excluding the failed node.
- disk (the job's log says no space was left): resubmit as is, from scratch, once the run
  folder's filesystem has the run's estimated disk free again (`tasks.execution._retries`
  checks; until then the decision waits for the next advance step).
- cancelled (by a user), dependency, launch, error (code or data): never retried.
At most `max_attempts` submissions per fine-tune (the first one included).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tasks.backends import FailureCause, JobOverrides
from tasks.core._durations import format_duration, parse_duration, scale_duration
from tasks.model._status import StageStatus

RemedyKind = Literal["resubmit_smaller_batch", "resume_more_time", "resubmit_exclude_node", "resubmit_after_space",
                     "none"]
DEFAULT_MAX_ATTEMPTS = 3
TIME_MULTIPLIER = 2.0
_NOT_RETRIED: dict[str, str] = {
    "cancelled": "cancelled by a user: never retried",
    "dependency": "never ran (its dependency failed): not retried",
    "launch": "the job could not start (launch failure): fix the cause and launch again; not retried",
    "error": "code or data error (see the job log): not retried",
    "environment": "the job environment is wrong (its preflight line says what): fix job_env and launch again; "
    "not retried",
}


class RetryContext(BaseModel):
    """What `decide` needs to know about the run as it was last submitted."""

    batch_size: int
    gradient_accumulation_steps: int
    time_limit: str  # the limit the failed attempt ran with
    default_time_limit: str  # the cluster's fine-tune limit (the script's #SBATCH --time)
    max_time_limit: str | None = None  # the partition's MaxTime (cluster settings): no retry asks for more
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
        """Whether the fine-tune is submitted again (any remedy but "none")."""
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
    if cause not in ("oom", "timeout", "node", "disk"):
        return Remedy(kind="none", cause=cause, description=f"unknown failure cause {cause!r}: not retried")
    if attempts_so_far >= max_attempts:
        return Remedy(
            kind="none", cause=cause,
            description=f"{cause}: not retried, {attempts_so_far} of {max_attempts} attempts made",
        )
    if cause == "disk":
        return Remedy(kind="resubmit_after_space", cause=cause, time_limit=carry_time,
                      resume_epoch=ctx.resume_epoch, **same,  # as it was: a checkpoint saved on a full disk is suspect
                      description="disk full: resubmit as is once the space check passes")
    if cause == "oom":
        if bs <= 1:
            return Remedy(
                kind="none", cause=cause,
                description="OOM at batch size 1: cannot be reduced further "
                "(lower max_seq_len or use a larger GPU); not retried",
            )
        factor = _smallest_prime_factor(bs)
        new_bs, new_ga = bs // factor, ga * factor
        return Remedy(
            kind="resubmit_smaller_batch", cause=cause, batch_size=new_bs, gradient_accumulation_steps=new_ga,
            time_limit=carry_time, exclude_nodes=list(ctx.excluded_nodes),
            description=f"OOM: batch {bs}→{new_bs}, grad accumulation {ga}→{new_ga} "
            f"(effective batch {bs * ga} unchanged)",
        )
    if cause == "timeout":
        return _timeout_remedy(ctx, same)
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


def _more_time(ctx: RetryContext) -> tuple[str, float]:
    """The next attempt's --time (x TIME_MULTIPLIER, capped by max_time_limit) and the multiplier it amounts to."""
    wanted = scale_duration(ctx.time_limit, TIME_MULTIPLIER)
    cap, now = parse_duration(ctx.max_time_limit), parse_duration(ctx.time_limit) or 0.0
    if cap is None or (parse_duration(wanted) or 0.0) <= cap:
        return wanted, TIME_MULTIPLIER
    return format_duration(cap), (cap / now if now else 1.0)


def _timeout_remedy(ctx: RetryContext, same: dict) -> Remedy:
    new_time, factor = _more_time(ctx)
    resumable = ctx.resumable_epoch is not None
    if factor <= 1.0 and not resumable:
        return Remedy(
            kind="none", cause="timeout",
            description=f"TIMEOUT: not retried: it ran with {ctx.time_limit}, the partition's maximum "
            f"(max_time_limit {ctx.max_time_limit}), and saved no epoch to resume from, so it would time out "
            "again; lower max_steps_per_epoch or epochs, or use a partition with a longer MaxTime",
        )
    where = f"resume after epoch_{ctx.resumable_epoch}" if resumable else "no finished epoch to resume from, restart"
    capped = f" (capped by max_time_limit {ctx.max_time_limit})" if factor < TIME_MULTIPLIER else ""
    return Remedy(
        kind="resume_more_time", cause="timeout", time_multiplier=round(factor, 4), time_limit=new_time,
        resume_epoch=ctx.resumable_epoch, **same,
        description=f"TIMEOUT: {where} with time {ctx.time_limit}→{new_time}{capped}",
    )


def attempts_counted(stage: StageStatus) -> int:
    """Attempts that count against `max_attempts`: those since the researcher last reopened the stage."""
    last_reopen = max((i for i, a in enumerate(stage.attempts) if a.reopened), default=-1)
    return len(stage.attempts) - last_reopen - 1

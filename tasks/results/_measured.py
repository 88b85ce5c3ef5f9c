"""Learning from finished runs: what each completed fine-tune measured, for the next plan.

Reads: `{group}/experiment.yaml`, `runs_status.yaml` (which fine-tunes completed, and their final
attempt's job id, elapsed time and batch size) and, through `tasks.training._prior_logs.parse_log`, the
final attempt's torchtune log (its job log `{run}/<job log>`, as the backend names it) with the `epoch_N/` folders and
`logs/log_*.txt` beside it.
Writes: `{group}/measured_runs.yaml` (header from `templates/state/measured_runs.yaml.j2`, body by
PyYAML): per completed fine-tune its model, batch size, packing, samples, it/s, peak GPU memory,
checkpoint GiB per epoch, training and job elapsed time, start-up, seconds per checkpoint save and
per validation pass, and the log they come from.

How the next plan uses them: `tasks.planning._planner` searches the design's `paths.output_dir` (every
earlier run group) for prior logs when `paths.prior_runs` names no folder, keeping the logs of
fine-tunes that completed. Those are the same job logs this record points to,
so estimates taken from them say `prior log <path>` in runs_plan.md. measured_runs.yaml is the
readable record of those figures (and is shown by summary.md); the logs stay the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.backends import job_naming
from tasks.core._files import atomic_write_text, dump_yaml
from tasks.core._templating import render_template
from tasks.model._group import GroupRef, RunGroup
from tasks.model._status import utc_now
from tasks.training._prior_logs import parse_log


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


def measurements(group: GroupRef) -> list[dict[str, Any]]:
    """One record per completed fine-tune whose final log could be read (others are left out)."""
    group = RunGroup.of(group)
    plan = group.plan
    status = group.status.read()
    naming = job_naming(group.cluster)
    records: list[dict[str, Any]] = []
    for run in plan.finetune_runs:
        entry = status.runs.get(run.name)
        if entry is None or entry.finetune.status != "completed" or not entry.finetune.attempts:
            continue
        last = entry.finetune.attempts[-1]
        log = group.layout.job_log(run.name, None, last.job_id, naming)
        if not log.is_file():
            continue
        prior = parse_log(log)
        records.append({
            "run": run.name,
            "model": prior.model or run.model,
            "job_id": last.job_id,
            "log": str(log),
            "batch_size": prior.batch_size or last.batch_size or run.params.batch_size,
            "gradient_accumulation_steps": prior.gradient_accumulation_steps or run.params.gradient_accumulation_steps,
            "packed": run.params.packed if prior.packed is None else prior.packed,
            "lora_rank": run.params.lora_rank,
            "epochs": run.params.epochs,
            "samples": prior.samples,
            "steps_per_epoch": prior.steps_per_epoch,  # the bar's: max_steps_per_epoch where that ended the epoch
            "full_steps_per_epoch": prior.full_steps_per_epoch,
            "speed_it_s": prior.speed_it_s,
            "peak_memory_gib": prior.peak_memory_gib,
            "packing_density": prior.packing_density,
            "checkpoint_gib_per_epoch": _round(prior.checkpoint_gib_per_epoch),
            "train_elapsed_s": prior.train_elapsed_s,
            "job_elapsed_s": last.elapsed_s,
            "startup_s": prior.startup_s,
            "checkpoint_save_s": prior.save_s,
            "validation_pass_s": prior.validation_s,
            "attempts": len(entry.finetune.attempts),
            "usable_for_estimates": bool(prior.model and prior.completed and not prior.oom),
            "problems": list(prior.problems),
        })
    return records


def record_measurements(group: GroupRef) -> Path | None:
    """Write measured_runs.yaml; None (and nothing written) when no fine-tune has completed."""
    group = RunGroup.of(group)
    records = measurements(group)
    if not records:
        return None
    text = render_template("state/measured_runs.yaml.j2", group=group.name, written=utc_now(), count=len(records),
                           body=dump_yaml({"run_group": group.name, "runs": records}))
    return atomic_write_text(group.layout.measured_file, text)


__all__ = ["measurements", "record_measurements"]

"""The pilot before a sweep: per model, a few steps of its first run, one checkpoint save, short evaluations.

Reads: `pilot_problems` reads the pilot group's `runs_status.yaml`; the rest is pure. Writes: nothing
(`render_pilot_report` renders `templates/reports/pilot.md.j2` for the pilot flow's artifact).
The pilot is a run group of its own, `{output_dir}/{name}-pilot-{hash6}_{date}` (`tasks.model._layout`), set up,
submitted and watched like any other; the next plan of the design reads its logs as prior runs
(`tasks.planning._planner.prior_run_folders` always adds them) and names each figure it took from
them `measured by pilot: ...`.

What a pilot run is: the design's first run of each model (every factor at its first level), with
the batch size the sweep's plan chose (so it measures speed and peak GPU memory where the sweep
will train), one epoch ended after `steps` optimizer steps (torchtune's `max_steps_per_epoch`), so
one checkpoint save; every evaluation task on the first `eval_samples` test samples of that
checkpoint (fixed time and time per sample: `tasks.planning._prior_evals`). No control runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.core._templating import render_template
from tasks.model._design import ExperimentDesign
from tasks.model._layout import STATUS_FILE, pilot_name
from tasks.model._plan import Figure, Plan
from tasks.model._status_file import StatusStore
from tasks.planning._planner import design_hash

DEFAULT_STEPS = 20
# two generation batches of inspect's hf provider: the second times evaluation without its warm-up
DEFAULT_EVAL_SAMPLES = 64


def _first_level(levels: list[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
    if isinstance(levels, dict):
        label = next(iter(levels))
        return {label: levels[label]}
    return levels[:1]


def pilot_design(plan: Plan, steps: int = DEFAULT_STEPS, eval_samples: int = DEFAULT_EVAL_SAMPLES) -> ExperimentDesign:
    """The design of `plan`'s pilot: one short run per model at the plan's batch sizes (see the module doc)."""
    if steps < 1 or eval_samples < 1:
        raise ValueError(f"a pilot needs at least 1 step and 1 evaluation sample (got {steps}, {eval_samples})")
    design = plan.design
    first = {m: next((r for r in plan.finetune_runs if r.model == m), None) for m in design.models}
    batch = {m: int(r.params.batch_size) for m, r in first.items() if r is not None and r.params.batch_size}
    limit = min(eval_samples, design.evaluation.limit or eval_samples)
    training = design.training.model_copy(update={
        "epochs": 1, "max_steps_per_epoch": steps, "batch_size": batch or design.training.batch_size,
    })
    evaluation = design.evaluation.model_copy(update={"epochs": "last", "matrix": None, "limit": limit})
    pilot = design.model_copy(update={
        "name": f"{design.name}-pilot",
        "question": f"Pilot of {design.name}: training speed, peak GPU memory, checkpoint size and evaluation "
                    f"time per model at the sweep's settings, before the sweep spends its GPU-hours.",
        # every factor at its first level; epochs, when it is a factor, at 1 like the rest of the pilot
        "factors": {name: [1] if name == "epochs" else _first_level(levels)
                    for name, levels in design.factors.items()},
        "controls": False,
        "replicates": 1,  # a pilot measures speed, memory and size, which the seed does not change
        "training": training,
        "evaluation": evaluation,
        "notes": f"{steps} steps of each model's first run of {design.name}, one checkpoint save, "
                 f"and every evaluation task on {limit} test samples.",
    })
    # the same settings again give the same group (a re-run resumes it); other settings another one
    return pilot.model_copy(update={"name": pilot_name(design.name, design_hash(pilot))})


class PilotFigure(BaseModel):
    """One figure of a plan and whether the pilot measured it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    name: str  # batch size, training speed, ...
    value: str  # formatted with its unit
    source: str
    by_pilot: bool


def _figures(model: str, named: dict[str, tuple[Figure | None, str]]) -> list[PilotFigure]:
    out = []
    for name, (figure, unit) in named.items():
        if figure is None:
            continue
        number = f"{figure.value:g}" if name == "batch size" else \
            (f"{figure.value:,.0f}" if abs(figure.value) >= 100 else f"{figure.value:.3g}")
        value = f"{number}{unit}"
        out.append(PilotFigure(model=model, name=name, value=value, source=figure.source, by_pilot=figure.by_pilot))
    return out


def pilot_figures(plan: Plan) -> list[PilotFigure]:
    """The per-model figures the approval form shows, each saying whether the pilot measured it."""
    rows: list[PilotFigure] = []
    for model, m in plan.estimates.per_model.items():
        first = next((e for e in plan.estimates.runs.values() if e.model == model and e.steps_per_epoch), None)
        epoch = m.speed_it_s.but(first.minutes_per_epoch) if first else None
        rows += _figures(model, {
            "batch size": (m.batch_size, ""),
            "training speed": (m.speed_it_s, " it/s"),
            "minutes per epoch": (epoch, " min"),
            "start-up per job": (m.startup_minutes, " min"),
            "peak GPU memory": (m.peak_memory_gib, " GiB"),
            "checkpoint per epoch": (m.checkpoint_gib_per_epoch, " GiB"),
            "evaluation per task": (m.eval_minutes, " min"),
        })
    return rows


def pilot_problems(pilot_dir: Path) -> list[str]:
    """One line per stage of the pilot group that did not complete (empty: the pilot finished cleanly)."""
    status = StatusStore(Path(pilot_dir) / STATUS_FILE).read()
    return [f"{run} {key}: {stage.status}" + (f" ({stage.reason})" if stage.reason else "")
            for run, key, stage in status.stages() if stage.status not in ("completed", "skipped")]


def render_pilot_report(plan: Plan, pilot_dir: Path, steps: int, eval_samples: int, problems: list[str]) -> str:
    """The pilot's markdown report: what ran, what failed, and the sweep's figures with their sources."""
    return render_template("reports/pilot.md.j2", design_name=plan.design.name, pilot_group=Path(pilot_dir).name,
                           pilot_dir=pilot_dir, plan_group=plan.run_group, steps=steps, eval_samples=eval_samples,
                           problems=problems, figures=pilot_figures(plan))


__all__ = ["DEFAULT_EVAL_SAMPLES", "DEFAULT_STEPS", "PilotFigure", "pilot_design", "pilot_figures", "pilot_problems",
           "render_pilot_report"]

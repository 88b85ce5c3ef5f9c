"""Per-run overrides made by retries (smaller batch, resume after TIMEOUT), applied to a run.

Reads: a run folder's `epoch_N/` and `recipe_state/` (to find the epoch a resume can start
from), and the overrides recorded in `runs_status.yaml` (`finetune.overrides`).
Writes: nothing; `tasks/setup/_files.py` and `tasks/execution/_retries.py` render with these.

How torchtune 0.6.1 resumes a LoRA run (`recipes/lora_finetune_single_device.py`,
`torchtune/training/checkpointing/_checkpointer.py` and `_utils.py`): with top-level
`resume_from_checkpoint: true` the recipe builds the checkpointer with
`should_load_recipe_state=True`; the base weights are still read from `checkpoint_dir`
(adapter case), the adapter from `checkpointer.adapter_checkpoint` (default: `adapter_model.pt`
in the largest `epoch_N/` of `output_dir`) and the optimizer/seed/epoch counters from
`checkpointer.recipe_checkpoint` (default: `{output_dir}/recipe_state/recipe_state.pt`, written
after every epoch but the last and overwritten each time). Training continues at
`epochs_run` from that state. sweepflow pins both paths (relative to `output_dir`) to the
last epoch whose adapter is at least as old as `recipe_state.pt`, so a folder half written by
a job killed while saving is never picked.
"""

from __future__ import annotations

from pathlib import Path

from tasks.model._plan import Plan, Run
from tasks.model._status import FINETUNE, FinetuneOverrides, RunsStatus
from tasks.training._config import FinetuneContext, render_finetune_config

RECIPE_STATE = "recipe_state/recipe_state.pt"
ADAPTER_FILE = "adapter_model.pt"


def adapter_checkpoint(epoch: int) -> str:
    """The adapter file of `epoch_N/`, relative to the run folder (torchtune's output_dir)."""
    return f"epoch_{epoch}/{ADAPTER_FILE}"


def resumable_epoch(run_dir: Path) -> int | None:
    """The last epoch a resume can start after: its adapter exists and recipe_state.pt is newer.

    None when there is no recipe state (no epoch finished, or only the last one, which writes none).
    """
    state = run_dir / RECIPE_STATE
    try:
        state_mtime = state.stat().st_mtime
    except FileNotFoundError:
        return None
    best: int | None = None
    for folder in run_dir.glob("epoch_*"):
        suffix = folder.name.removeprefix("epoch_")
        adapter = folder / ADAPTER_FILE
        if not suffix.isdigit() or not adapter.is_file():
            continue
        if adapter.stat().st_mtime <= state_mtime and (best is None or int(suffix) > best):
            best = int(suffix)
    return best


def apply_overrides(run: Run, overrides: FinetuneOverrides | None) -> Run:
    """The run with its batch size / gradient accumulation replaced by the overrides (a copy)."""
    if overrides is None:
        return run
    changes = {
        k: v
        for k, v in (
            ("batch_size", overrides.batch_size),
            ("gradient_accumulation_steps", overrides.gradient_accumulation_steps),
        )
        if v is not None
    }
    if not changes:
        return run
    return run.model_copy(update={"params": run.params.model_copy(update=changes)})


def resume_settings(epoch: int) -> dict[str, object]:
    """Template values that make finetune.yaml continue after `epoch_{epoch}/`."""
    return {"epoch": epoch, "recipe_checkpoint": RECIPE_STATE, "adapter_checkpoint": adapter_checkpoint(epoch)}


def render_finetune_with_overrides(
    run: Run,
    run_dir: Path,
    device: str | None,
    plan_context: Plan | FinetuneContext | None,
    overrides: FinetuneOverrides | None,
) -> str:
    """`render_finetune_config` of the run with its overrides (batch, accumulation, resume)."""
    resume = (
        resume_settings(overrides.resume_epoch)
        if overrides is not None and overrides.resume_epoch is not None
        else None
    )
    return render_finetune_config(
        apply_overrides(run, overrides), run_dir, device=device, plan_context=plan_context, resume=resume
    )


def overrides_from_status(status: RunsStatus) -> dict[str, FinetuneOverrides]:
    """Run -> overrides, for every fine-tune a retry changed."""
    found: dict[str, FinetuneOverrides] = {}
    for run, key, stage in status.stages():
        if key == FINETUNE and stage.overrides is not None:
            found[run] = stage.overrides
    return found

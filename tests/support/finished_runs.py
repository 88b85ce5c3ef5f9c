"""What finished runs leave in a run group: REAL inspect-ai `.eval` logs, a torchtune log, checkpoints.

`mock_eval` runs `inspect_ai.eval()` in-process on a 4-sample task with the `mockllm/model`
provider, whose outputs fix the accuracy; `write_training_outputs` copies a torchtune 0.6.1 SLURM
log from tests/fixtures/prior_runs and writes epoch checkpoints and a DiskLogger metric file in
torchtune's format. Used by results/test_summarize.py and integration/test_ui_screenshot.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tasks.model._status_file import StatusStore
from tests.support.paths import FIXTURES_DIR

FIXTURE_LOG = (FIXTURES_DIR / "prior_runs" / "cap_5L_sweep_2025-09-30"
               / "Llama-3.2-1B-Instruct_5L_rank64" / "slurm-4812345.out")
TARGETS = ["W0", "W1", "W2", "W3"]
DISK_LOSSES = [2.5, 2.0, 1.5, 1.0, 0.5]


def mock_eval(group: Path, run: str, epoch: int | str, correct: int, design_hash: str, task_name: str = "cap",
              fail: bool = False) -> Path:
    """A real inspect-ai evaluation of task `task_name`: `correct` of the 4 answers match (`fail`: its model raises)."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    answers = TARGETS[:correct] + ["wrong"] * (4 - correct)
    outputs = [ModelOutput.from_content("mockllm/model", a) for a in answers]
    for output in outputs:
        output.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)  # no tokenizer download
    task = Task(dataset=[Sample(input=f"w{i}", target=t) for i, t in enumerate(TARGETS)], solver=generate(),
                scorer=match(), name="cap")
    def broken(*_: object) -> ModelOutput:
        raise RuntimeError("the model failed")

    [log] = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=broken if fail else outputs,
                                               memoize=False), display="none",
                         log_dir=str(group / run / "evaluations" / task_name / "logs"),
                         metadata={"run": run, "epoch": epoch, "is_finetuned": epoch != "base", "design_hash": design_hash})
    assert log.status == ("error" if fail else "success")
    return Path(log.location)


def write_training_outputs(group: Path, run: str, job_id: str, disk_logger: bool) -> None:
    """What a finished fine-tune leaves: its SLURM log (FIXTURE_LOG), epoch_0/1 checkpoints, a DiskLogger file."""
    run_dir = group / run
    shutil.copy(FIXTURE_LOG, run_dir / f"slurm-{job_id}.out")
    for epoch in (0, 1):
        (run_dir / f"epoch_{epoch}").mkdir(exist_ok=True)
        (run_dir / f"epoch_{epoch}" / "model-00001-of-00001.safetensors").write_bytes(b"w" * 1024)
    if disk_logger:  # torchtune DiskLogger.log_dict format
        (run_dir / "logs").mkdir(exist_ok=True)
        (run_dir / "logs" / "log_1795342527.txt").write_text("".join(
            f"Step {10 * (i + 1)} | loss:{loss} lr:0.0003 tokens_per_second_per_gpu:1480.2 peak_memory_alloc:15.1 \n"
            for i, loss in enumerate(DISK_LOSSES)))


def stage_job_id(group: Path, run: str, key: str = "finetune") -> str:
    """The job id runs_status.yaml records for a stage of `run`."""
    return StatusStore(group / "runs_status.yaml").read().stage(run, key).job_id

"""`status_text`: a run group's progress and runs table as terminal text (`sweepflow status GROUP`)."""

from __future__ import annotations

from tasks.execution import status_text, sync_jobs
from tasks.execution._status_text import BAR_WIDTH, REASON_WIDTH
from tests.support.fake_scheduler import launched_group, read_status
from tests.support.finished_runs import stage_job_id, write_training_outputs

RUN = "Llama-3.2-1B-Instruct_rank4"


def test_progress_counts_and_one_line_per_stage(tmp_path) -> None:
    group, fake = launched_group(tmp_path)
    # the checkpoints a completed fine-tune leaves, so that the sync takes COMPLETED as completed
    write_training_outputs(group, RUN, stage_job_id(group, RUN), disk_logger=True)
    fake.finish(stage_job_id(group, RUN), "COMPLETED", elapsed_s=3725.0, exit_code="0:0", node="gpu1")
    fake.finish(stage_job_id(group, RUN, "cap_epoch_0"), "FAILED", elapsed_s=5.0, exit_code="1:0", node="gpu1")
    sync_jobs(group, fake)
    status = read_status(group)
    stages = list(status.stages())
    total = sum(1 for *_, s in stages if s.status != "skipped")
    done = sum(1 for *_, s in stages if s.status in ("completed", "failed", "cancelled"))
    assert done == 2  # the fine-tune completed and one evaluation failed

    text = status_text(group)
    lines = text.splitlines()
    assert lines[0] == f"{group.name}  ({group})"
    percent = round(100 * done / total)
    assert lines[1] == f"Progress: [{'#' * round(BAR_WIDTH * done / total):.<{BAR_WIDTH}}] {done}/{total} " \
                       f"stages finished ({percent} %)"
    assert "1 completed" in lines[2] and "1 failed" in lines[2] and "2 skipped" in lines[2]
    assert lines[4].split() == ["RUN", "STAGE", "STATE", "ATTEMPTS", "ELAPSED", "JOB", "REASON"]
    rows = lines[5:]
    assert len(rows) == len(stages)  # one line per stage, whatever a reason holds
    finetune = next(r for r in rows if r.split()[:2] == [RUN, "finetune"])
    assert finetune.split()[2:6] == ["completed", "1", "1:02:05", stage_job_id(group, RUN)]
    failed = next(r for r in rows if r.split()[:2] == [RUN, "cap_epoch_0"])
    assert failed.split()[2] == "failed" and len(failed.split(None, 6)[-1]) <= REASON_WIDTH
    assert all(line == line.rstrip() for line in lines)

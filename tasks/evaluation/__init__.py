"""The inspect-ai seam: task references and arguments, `.eval` log headers, best epoch, adapter merge.

Layer 3 (imports `core`, `model`, `backends`). `best_epoch` and `merge_adapter` also run inside evaluation
jobs (`python -m tasks.evaluation.best_epoch RUN_DIR`, `python -m tasks.evaluation.merge_adapter ...`).
"""

from tasks.evaluation.eval_logs import (
    EvalLogEntry,
    SampleTiming,
    epoch_label,
    eval_seconds,
    evaluated_samples,
    read_log_headers,
    sample_timing,
)
from tasks.evaluation.inspect_tasks import inspect_task_functions, task_args, task_reference

__all__ = [
    "EvalLogEntry", "SampleTiming", "epoch_label", "eval_seconds", "evaluated_samples", "inspect_task_functions",
    "read_log_headers", "sample_timing", "task_args", "task_reference",
]

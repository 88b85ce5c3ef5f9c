"""The inspect-ai seam: task references and arguments, `.eval` log headers, best epoch, adapter merge.

Layer 3 (imports `core`, `model`, `backends`). `best_epoch` and `merge_adapter` also run inside evaluation
jobs (`python -m tasks.evaluation.best_epoch RUN_DIR`, `python -m tasks.evaluation.merge_adapter ...`), and
`run_tasks` is the evaluation job itself (`python -m tasks.evaluation.run_tasks TASKS_FILE --model-path DIR`).
"""

from tasks.evaluation._eval_logs import (
    EvalLogEntry,
    SampleTiming,
    epoch_label,
    eval_seconds,
    evaluated_samples,
    read_log_headers,
    sample_timing,
)
from tasks.evaluation._inspect_tasks import (
    TaskNotFound,
    TaskSignature,
    eval_task_reference,
    inspect_task_functions,
    task_reference,
    task_signature,
)
from tasks.evaluation._task_contract import bound_arguments, contract_problems, own_data, task_args

__all__ = [
    "EvalLogEntry", "SampleTiming", "TaskNotFound", "TaskSignature", "bound_arguments", "contract_problems",
    "epoch_label", "eval_seconds", "eval_task_reference", "evaluated_samples", "inspect_task_functions", "own_data",
    "read_log_headers", "sample_timing", "task_args", "task_reference", "task_signature",
]

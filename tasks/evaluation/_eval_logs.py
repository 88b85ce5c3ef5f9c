"""inspect-ai's `.eval` logs of one evaluation folder, read header only.

Reads: `{run}/evaluations/{task}/logs/*.eval` (inspect's header: status, results, and the
metadata `run`, `epoch`, `design_hash` that sweepflow's evaluation scripts pass). Writes nothing.
The sync (did the job succeed?) and the results (what did it score?) both read logs here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tasks.model._plan import EpochRef

EVAL_CLOCK_SLACK_S = 120.0  # a .eval log older than its attempt's submission (minus this) is not its own


@dataclass(frozen=True)
class EvalLogEntry:
    """One `.eval` file: its status ("success", "error", ... or "unreadable (<why>)") and header."""

    path: Path
    mtime: float
    status: str
    metadata: dict[str, Any] = field(default_factory=dict)
    header: Any = None  # inspect_ai.log.EvalLog (header only); None when the file is unreadable

    def is_for(self, run: str, epoch: EpochRef) -> bool:
        """Written by the evaluation of this run and epoch (the scripts' metadata says)."""
        return str(self.metadata.get("run")) == run and str(self.metadata.get("epoch")) == epoch_label(epoch)


def eval_seconds(entry: EvalLogEntry) -> float | None:
    """Seconds inspect itself spent on the evaluation (its stats' start to completion), or None.

    Model loading, which happens before, and the job's start-up are not in it.
    """
    stats: Any = getattr(entry.header, "stats", None)
    try:
        started = datetime.fromisoformat(stats.started_at)
        completed = datetime.fromisoformat(stats.completed_at)
    except (AttributeError, TypeError, ValueError):
        return None
    seconds = (completed - started).total_seconds()
    return seconds if seconds >= 0 else None


def evaluated_samples(entry: EvalLogEntry) -> int | None:
    """Dataset samples the evaluation completed (None: no results in its log).

    inspect counts each sample once per epoch of the task (`Task(epochs=N)`); the plan counts
    dataset samples, so the log's count is divided by the epochs.
    """
    results: Any = getattr(entry.header, "results", None)
    count = getattr(results, "completed_samples", None) or getattr(results, "total_samples", None)
    epochs = getattr(getattr(getattr(entry.header, "eval", None), "config", None), "epochs", None)
    if not isinstance(count, int) or count <= 0:
        return None
    return max(count // epochs, 1) if isinstance(epochs, int) and epochs > 1 else count


@dataclass(frozen=True)
class SampleTiming:
    """How one evaluation's samples went through the model, `batch` at a time."""

    first_batch_s: float  # until the first `batch` samples had finished: the warm-up rides on it
    steady_per_sample_s: float | None  # after it: median sample latency / batch (None: nothing after it)


def sample_timing(entry: EvalLogEntry, batch: int) -> SampleTiming | None:
    """The log's sample summaries read as batches of `batch` samples in flight; None without summaries.

    With `batch` samples in flight, each sample waits about one batch, and a batch serves `batch`
    samples: the time per sample is the median latency after the first batch over `batch`. Sample
    times have sub-second resolution, inspect's start/end stats whole seconds.
    """
    from inspect_ai.log import read_eval_log_sample_summaries  # slow import: only when there are logs

    try:
        summaries = read_eval_log_sample_summaries(str(entry.path))
    except Exception:  # inspect raises many kinds on a file it cannot read
        return None
    times = [s.total_time for s in summaries if s.total_time is not None]
    if not times:
        return None
    later = times[batch:]
    return SampleTiming(first_batch_s=max(times[:batch]),
                        steady_per_sample_s=statistics.median(later) / batch if later else None)


def epoch_label(epoch: EpochRef) -> str:
    """How evaluation metadata names an epoch: `0`, `1`, `best`, or `base` for a base model."""
    return "base" if epoch is None else str(epoch)


def read_log_headers(folder: Path) -> list[EvalLogEntry]:
    """Every `.eval` log in `folder`, sorted by name; a half-written or foreign file is kept as unreadable."""
    if not folder.is_dir():
        return []
    from inspect_ai.log import read_eval_log  # slow import: only when there are logs

    found = []
    for path in sorted(folder.glob("*.eval")):
        try:
            mtime = path.stat().st_mtime
            header = read_eval_log(str(path), header_only=True)
        except Exception as error:  # inspect raises many kinds on a file it cannot read
            found.append(EvalLogEntry(path, _mtime(path), f"unreadable ({type(error).__name__})"))
            continue
        found.append(EvalLogEntry(path, mtime, str(header.status), dict(header.eval.metadata or {}), header))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0

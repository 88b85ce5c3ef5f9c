"""Restore a damaged runs_status.yaml (truncated, unparseable, stages missing) from what the group knows.

Reads: `<group>/runs_status.yaml` (whatever of it still parses, run by run), its journal
`.sweepflow/runs_status.journal.jsonl` (every entry, even when its base is no longer the file
on disk), the kept backups `.sweepflow/backups/runs_status.yaml.N` (newest first) and the plan.
Writes: runs_status.yaml once, under the status lock (the damaged file becomes backup 1).

Each planned stage the file lacks is taken from the newest source that has it: the journal,
then the backups, then the plan (pending). A stage restored as pending whose job the scheduler
still knows is adopted by the next launch (by job name and submit folder, with the job's own
submit time), and a sync then checks the job's outputs on disk: so the scheduler's record and
the artifacts complete what the files could not.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from tasks.core._files import FileFormatError, parse_yaml
from tasks.model._plan import Plan
from tasks.model._status import FINETUNE, RunsStatus, RunStatus, StageStatus, initial_status, utc_now
from tasks.model._status_file import StatusStore, missing_stages

log = logging.getLogger(__name__)


class StatusRestore(BaseModel):
    """What a restore did: the damage found, and where each missing stage came from."""

    path: str
    damage: str
    restored: dict[str, str] = Field(default_factory=dict)  # "run/key" -> journal | backup <file> | plan (pending)

    def summary(self) -> str:
        """One line for the flow's log."""
        sources: dict[str, int] = {}
        for source in self.restored.values():
            sources[source] = sources.get(source, 0) + 1
        counts = ", ".join(f"{n} from {s}" for s, n in sources.items())
        return f"{self.path} was damaged ({self.damage}); restored {len(self.restored)} stages: {counts}"


def _salvage(raw_data: Any) -> dict[str, RunStatus]:
    """The runs of a parsed (possibly partial) runs_status mapping that validate on their own."""
    runs = raw_data.get("runs") if isinstance(raw_data, dict) else None
    found: dict[str, RunStatus] = {}
    if not isinstance(runs, dict):
        return found
    for name, entry in runs.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            continue
        try:
            found[name] = RunStatus.model_validate(entry)
        except ValidationError:
            evaluations = entry.get("evaluations")
            stages = {k: _stage(v) for k, v in (evaluations.items() if isinstance(evaluations, dict) else ())}
            finetune = _stage(entry.get("finetune"))
            if finetune is not None:  # the stages that validate on their own
                found[name] = RunStatus(finetune=finetune, evaluations={k: v for k, v in stages.items() if v})
    return found


def _stage(value: Any) -> StageStatus | None:
    try:
        return StageStatus.model_validate(value)
    except ValidationError:
        return None


def _read_runs(path: Path) -> dict[str, RunStatus]:
    try:
        return _salvage(parse_yaml(path.read_bytes(), path))
    except (OSError, FileFormatError):
        return {}


def _journal_runs(path: Path) -> dict[str, RunStatus]:
    """Every readable entry of the journal, whatever file it extended (the last one of a run wins)."""
    found: dict[str, RunStatus] = {}
    try:
        lines = path.read_bytes().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        try:
            item = json.loads(line)
            found[item["run"]] = RunStatus.model_validate(item["entry"])
        except (ValueError, KeyError, TypeError, ValidationError):
            continue  # a torn or damaged line: the sources after it still count
    return found


def _pick(run: str, key: str, sources: list[tuple[str, dict[str, RunStatus]]]) -> tuple[str, StageStatus] | None:
    for label, runs in sources:
        entry = runs.get(run)
        if entry is None:
            continue
        stage = entry.finetune if key == FINETUNE else entry.evaluations.get(key)
        if stage is not None:
            return label, stage
    return None


def _in_plan_order(status: RunsStatus, plan: Plan) -> RunsStatus:
    """The plan's runs and evaluations in the plan's order, then anything else the file had."""
    runs: dict[str, RunStatus] = {}
    for run in plan.runs:
        entry = status.runs[run.name]
        order = [j.key for j in run.evaluations]
        evaluations = {k: entry.evaluations[k] for k in order}
        evaluations.update({k: v for k, v in entry.evaluations.items() if k not in evaluations})
        runs[run.name] = RunStatus(finetune=entry.finetune, evaluations=evaluations)
    runs.update({name: entry for name, entry in status.runs.items() if name not in runs})
    return RunsStatus(run_group=status.run_group, runs=runs)


def restore_status(store: StatusStore, plan: Plan, now: str | None = None) -> StatusRestore | None:
    """Restore the planned stages runs_status.yaml lacks (see the module docstring); None when it lacks none."""
    try:
        store.read()
        return None
    except FileFormatError as error:
        damage = error.detail.split(";")[0]
    current = RunsStatus(run_group=plan.run_group, runs=_read_runs(store.path))
    with contextlib.suppress(FileFormatError):  # with the journal that extends the file, when readable
        current = store.read(check=False)
    missing = missing_stages(current, [(r.name, k) for r in plan.runs
                                       for k in (FINETUNE, *(j.key for j in r.evaluations))])
    sources = [("journal", _journal_runs(store.journal_path)),
               *[(f"backup {p.name}", _read_runs(p)) for p in store.backups()],
               ("plan (pending)", initial_status(plan).runs)]
    report = StatusRestore(path=str(store.path), damage=damage)
    for item in missing:
        run, key = item.split("/", 1)
        label, stage = _pick(run, key, sources)  # type: ignore[misc]  # the plan has every stage
        entry = current.runs.get(run)
        if entry is None:  # a missing run: its fine-tune comes first in `missing`
            current.runs[run] = RunStatus(finetune=stage.model_copy(deep=True))
        elif key == FINETUNE:
            entry.finetune = stage.model_copy(deep=True)
        else:
            entry.evaluations[key] = stage.model_copy(deep=True)
        report.restored[item] = label
    current = _in_plan_order(current, plan)
    store.write(current, now or utc_now())
    log.warning("runs_status: %s", report.summary())
    return report

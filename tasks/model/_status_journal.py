"""runs_status.yaml's journal: the runs changed since the file was last written in full.

Reads/writes: `<group>/.sweepflow/runs_status.journal.jsonl`. Its first line names the exact
runs_status.yaml it extends (the sha256 of its bytes) and when it was started; each further
line is one run's whole new entry (`{"run": name, "entry": {finetune, evaluations}}`), appended
and fsynced under the status lock. A reader applies the lines in order over the YAML; the last
line of a run wins, so applying a line twice changes nothing.

Why: a submission pass records each job id before the next sbatch (crash safety), and a sync
changes a few stages per poll. Rewriting a 2 MB runs_status.yaml for each made the bytes
written grow with the square of the job count; appending a run's entry costs what changed.
`StatusStore` folds the journal into the YAML (one full write, then the journal is removed)
when it has grown to half the YAML's size, is older than `FOLD_AFTER_S`, or a flow flushes.

A journal whose base is not the YAML on disk (a hand edit, a crash between a fold's write and
the journal's removal) is stale and never applied; a torn last line (a crash mid-append) is
ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

FORMAT = 1
FOLD_AFTER_S = 60.0  # runs_status.yaml is at most about this far behind its journal
FOLD_FRACTION = 0.5  # fold once the journal is this large a part of the YAML


class Journal(NamedTuple):
    """A journal that extends the YAML on disk: its runs' newest entries, size and age."""

    base: str  # sha256 of the runs_status.yaml bytes it extends
    started: float  # time.time() when its header was written
    size: int  # bytes, header included
    runs: dict[str, dict[str, Any]]  # run -> its newest entry (JSON)

    def age(self) -> float:
        """Seconds since the journal was started."""
        return time.time() - self.started

    def due(self, yaml_bytes: int, adding: int = 0) -> bool:
        """Whether it should be folded into the YAML now (too old, or too large with `adding` more bytes)."""
        return self.age() >= FOLD_AFTER_S or self.size + adding > FOLD_FRACTION * max(yaml_bytes, 1)


def digest(raw: bytes) -> str:
    """The sha256 a journal names its base by."""
    return hashlib.sha256(raw).hexdigest()


def read_journal(path: Path, raw: bytes) -> Journal | None:
    """The journal at `path` when it extends exactly `raw`; None when absent, stale or unreadable."""
    try:
        with path.open("rb") as handle:
            header = json.loads(handle.readline())
            if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("base") != digest(raw):
                return None
            runs: dict[str, dict[str, Any]] = {}
            for line in handle:
                try:
                    item = json.loads(line)
                except ValueError:  # a torn last line: the append it belongs to never finished
                    break
                if isinstance(item, dict) and isinstance(item.get("run"), str) and isinstance(item.get("entry"), dict):
                    runs[item["run"]] = item["entry"]
            return Journal(base=header["base"], started=float(header.get("started", 0.0)),
                           size=handle.tell(), runs=runs)
    except (OSError, ValueError, TypeError):
        return None


def entry_line(run: str, entry: dict[str, Any]) -> bytes:
    """One journal line: the run's whole entry."""
    return json.dumps({"run": run, "entry": entry}).encode() + b"\n"


def append(path: Path, raw: bytes, current: Journal | None, lines: list[bytes]) -> Journal:
    """Append `lines` (starting the journal for `raw` when `current` is None), fsynced; the journal after."""
    path.parent.mkdir(exist_ok=True)
    started = current.started if current else time.time()
    head = b"" if current else json.dumps({"format": FORMAT, "base": digest(raw), "started": started}).encode() + b"\n"
    mode = "ab" if current else "wb"
    data = head + b"".join(lines)
    with path.open(mode) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    runs = dict(current.runs) if current else {}
    for line in lines:
        item = json.loads(line)
        runs[item["run"]] = item["entry"]
    return Journal(base=current.base if current else digest(raw), started=started,
                   size=(current.size if current else 0) + len(data), runs=runs)


def remove(path: Path) -> None:
    """Drop the journal (after a full write made it part of the YAML)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

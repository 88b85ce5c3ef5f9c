"""runs_status.yaml on disk: read, render, and safe concurrent updates (`StatusStore`).

Reads/writes: `<group>/runs_status.yaml` (header from `templates/state/runs_status.yaml.j2`,
body dumped by PyYAML), its lock file `<group>/runs_status.yaml.lock`, and, for large files, a
read cache `<group>/.sweepflow/runs_status.cache.json`.
Every change goes through `StatusStore.update`: read-modify-write under a cross-process file
lock, then an atomic replace, so concurrent writers (flows, the scheduler sync) never lose an update
and a reader never sees half a file. A terminal stage (completed/failed/cancelled/skipped) is
never moved back to a non-terminal one unless the caller says `force=True`.

The read cache: parsing a 10,000-job runs_status.yaml (~3 MB) with libyaml takes seconds, so
every write of a file of `CACHE_MIN_BYTES` or more also writes the same status as JSON, with
the sha256 of the YAML bytes it was written with. A read hashes the YAML (milliseconds) and
takes the JSON (validated by pydantic, fast) only when the hash matches; otherwise (a hand
edit, no cache, a corrupt or stale cache) it parses the YAML as always, and refreshes the
cache. runs_status.yaml stays the only truth: the cache is never used for any other bytes.

Damage: a store opened with the plan's stages (`expected`, as `RunGroup` opens it) refuses a
file that lacks any planned run or stage (`StatusDamaged`, naming the file and what is missing)
instead of reporting the stages it does have as all there is; `tasks.model._status_restore`
restores such a file. Before each full rewrite the file on disk is kept as
`.sweepflow/backups/runs_status.yaml.1` (hard-linked: no copy), the older ones moved to `.2`
... `.{BACKUPS}`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from filelock import FileLock, Timeout
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from tasks.core._errors import FileSystemError, domain_error
from tasks.core._files import (
    FileFormatError,
    atomic_write_bytes,
    dump_yaml,
    gc_paused,
    parse_yaml,
    read_bytes,
    read_yaml,
)
from tasks.core._templating import render_template
from tasks.model import _status_journal as status_journal
from tasks.model._design_file import problems_from_validation
from tasks.model._layout import STATE_DIR
from tasks.model._status import FINETUNE, RunsStatus, RunStatus, StageStatus, StatusError, utc_now
from tasks.model._status_journal import Journal

log = logging.getLogger(__name__)

POLL_SECONDS = 0.01  # how often a waiting writer retries the lock
CACHE_FORMAT = 1  # the cache's first line: {format, yaml_file, yaml_sha256, runs: [[run, start, end, fingerprint]]}
CACHE_MIN_BYTES = 64 * 1024  # smaller files parse in milliseconds: no cache file for them
BACKUPS = 5  # earlier versions of runs_status.yaml kept in .sweepflow/backups/
BACKUP_DIR = "backups"
SHOWN = 4  # missing stages named in a StatusDamaged message


class StatusDamaged(FileFormatError):
    """runs_status.yaml lacks stages the plan has (truncated, or edited by hand): never believed."""

    def __init__(self, path: str | Path, missing: list[str], planned: int):
        self.missing = missing
        named = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
        super().__init__(path, f"damaged: {len(missing)} of the plan's {planned} stages are missing ({named}); "
                               "nothing was changed. Run setup-experiment to restore it (journal, backups, "
                               "plan; launch-runs then adopts the scheduler's jobs)")


def missing_stages(status: RunsStatus, expected: Collection[tuple[str, str]]) -> list[str]:
    """`run/key` of every expected stage the status lacks, in the expected order."""
    missing = []
    for run, key in expected:
        entry = status.runs.get(run)
        if entry is None or (key != FINETUNE and key not in entry.evaluations):
            missing.append(f"{run}/{key}")
    return missing


_BODY_MARK = "\x00runs_status body\x00"


class _Written(NamedTuple):
    """runs_status.yaml as read: its bytes, where each run's YAML lies in them (from a matching cache), its journal."""

    raw: bytes
    runs: dict[str, tuple[int, int, str]]  # run -> (start, end, fingerprint): its YAML is raw[start:end + 1]
    journal: Journal | None = None

    def fingerprint(self, run: str) -> str | None:
        """The fingerprint of the run's entry as a reader sees it (the journal's, else the YAML's)."""
        if self.journal is not None and run in self.journal.runs:
            return _fingerprint(run, self.journal.runs[run])
        known = self.runs.get(run)
        return known[2] if known else None


def _fingerprint(name: str, entry: Any) -> str:
    return hashlib.blake2b(f"{json.dumps(name)}: {json.dumps(entry)}".encode(), digest_size=16).hexdigest()


def _run_index(value: Any, raw: bytes) -> dict[str, tuple[int, int, str]]:
    """The cache's run index, checked against the bytes it describes (anything odd: no index)."""
    index: dict[str, tuple[int, int, str]] = {}
    if not isinstance(value, list):
        return index
    for item in value:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str) and isinstance(item[3], str)
                and all(type(n) is int for n in item[1:3]) and 0 < item[1] <= item[2] < len(raw)
                and raw[item[1] - 1] == raw[item[2]] == 0x0A):  # a run's lines: after a newline, before one
            return {}
        index[item[0]] = (item[1], item[2], item[3])
    return index


def _render(data: dict[str, Any], now: str, before: _Written | None = None) -> tuple[bytes, bytes, list[list[Any]]]:
    """(runs_status.yaml's bytes, the cache's JSON, the cache's run index) for `data`.

    The text is exactly the template around `dump_yaml(data)`; the body is assembled run by run
    (PyYAML writes `runs:` entries one after the other, each at the same indentation, so the
    dump of {"runs": {run: entry}} without its first line is that run's part of the whole
    dump; libyaml is also faster on small documents). A run whose JSON is the same as when
    `before` was written keeps its YAML from `before`'s bytes: no dump at all.
    """
    head, mark, tail = render_template("state/runs_status.yaml.j2", now=now, body=_BODY_MARK).partition(_BODY_MARK)
    runs = data.get("runs")
    if not (
        mark and list(data) == ["run_group", "runs"] and isinstance(runs, dict) and runs
        and all(type(k) is str for k in runs)
    ):
        raw = render_template("state/runs_status.yaml.j2", now=now, body=dump_yaml(data)).encode("utf-8")
        return raw, _json(data), []
    parts = [head.encode("utf-8"), (dump_yaml({"run_group": data["run_group"]}) + "runs:\n").encode("utf-8")]
    offset = len(parts[0]) + len(parts[1])
    index: list[list[Any]] = []
    entries: list[str] = []
    for name, entry in runs.items():
        text = f"{json.dumps(name)}: {json.dumps(entry)}"
        entries.append(text)
        fingerprint = _fingerprint(name, entry)
        known = before.runs.get(name) if before else None
        if known is not None and known[2] == fingerprint:
            piece = before.raw[known[0]:known[1] + 1]  # type: ignore[union-attr]
        else:
            dumped = dump_yaml({"runs": {name: entry}})
            if not dumped.startswith("runs:\n") or not dumped.endswith("\n") or dumped.endswith("\n\n"):
                raw = render_template("state/runs_status.yaml.j2", now=now, body=dump_yaml(data)).encode("utf-8")
                return raw, _json(data), []
            piece = dumped[len("runs:\n"):].encode("utf-8")
        index.append([name, offset, offset + len(piece) - 1, fingerprint])  # end: the run's last newline
        parts.append(piece)
        offset += len(piece)
    parts[-1] = parts[-1][:-1]  # the template writes the body without its final newline
    parts.append(tail.encode("utf-8"))
    body = f'{{"run_group": {json.dumps(data["run_group"])}, "runs": {{{", ".join(entries)}}}}}'
    return b"".join(parts), body.encode("utf-8"), index


def dump_status(status: RunsStatus, now: str) -> str:
    """The file's text: the seed's header comments, then the YAML body from PyYAML."""
    return _render(status.model_dump(mode="json"), now)[0].decode("utf-8")


def parse_status(data: Any, source: str | Path) -> RunsStatus:
    """Validate a parsed runs_status.yaml; `FileFormatError` naming `source` when it does not fit."""
    if not isinstance(data, dict):
        raise FileFormatError(source, "is not a runs_status.yaml mapping (expected run_group: and runs:)")
    try:
        return RunsStatus.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{p.field}: {p.message}" for p in problems_from_validation(error, str(source)))
        raise FileFormatError(source, f"does not match the runs_status.yaml schema: {problems}") from None


def load_status(path: str | Path) -> RunsStatus:
    """Read runs_status.yaml; `FileFormatError` naming the file when it is missing or invalid."""
    return parse_status(read_yaml(path), path)


def protect_terminal(old: RunsStatus, new: RunsStatus) -> list[str]:
    """Undo, in `new`, every move of a terminal stage back to a non-terminal one; say which."""
    refused: list[str] = []
    for run, key, before in old.stages():
        entry = new.runs.get(run)
        if entry is None:
            continue
        after = entry.finetune if key == FINETUNE else entry.evaluations.get(key)
        if after is not None and before.is_terminal and not after.is_terminal:
            refused.append(f"{run}/{key}: {before.status} -> {after.status}")
            restored = before.model_copy(deep=True)
            if key == FINETUNE:
                entry.finetune = restored
            else:
                entry.evaluations[key] = restored
    return refused


Updater = Callable[[RunsStatus], Any]  # mutate the status in place, or return a new RunsStatus


def _dump_is_final(data: dict[str, Any]) -> bool:
    """Whether validating `data` (a RunsStatus's JSON dump) and dumping the result gives `data` again.

    It does, but for one thing: a non-finite float (an attempt's elapsed_s) is dumped as null,
    which the validated copy then omits. No other attempt or overrides value is ever null.
    """
    try:
        for entry in data["runs"].values():
            for stage in (entry["finetune"], *entry["evaluations"].values()):
                if any(None in attempt.values() for attempt in stage.get("attempts", ())):
                    return False
                if None in (stage.get("overrides") or {}).values():
                    return False
    except (AttributeError, KeyError, TypeError):
        return False
    return True


def _same_file(seen: os.stat_result, path: Path) -> bool:
    """`path` is still the file `seen` was taken of (a writer replaces it: a new inode)."""
    try:
        now = path.stat()
    except OSError:
        return False
    return (now.st_ino, now.st_dev, now.st_size, now.st_mtime_ns) == (
        seen.st_ino, seen.st_dev, seen.st_size, seen.st_mtime_ns
    )


def _json(data: dict[str, Any]) -> bytes:
    # json, not pydantic's model_dump_json: that one writes an infinite float as null
    return json.dumps(data).encode()


class StatusStore:
    """runs_status.yaml of one run group, safe for many concurrent writers (processes too)."""

    def __init__(self, path: str | Path, lock_timeout: float = 120.0, cache_min_bytes: int | None = None,
                 journal: bool = True, expected: Callable[[], Collection[tuple[str, str]]] | None = None):
        self.path = Path(path)
        self._expected = expected  # the plan's (run, key) stages: a file lacking one is refused
        self._expected_stages: Collection[tuple[str, str]] | None = None
        self.backup_dir = self.path.parent / STATE_DIR / BACKUP_DIR
        self.lock_path = Path(f"{self.path}.lock")
        self.cache_path = self.path.parent / STATE_DIR / f"{self.path.stem}.cache.json"
        self.journal_path = self.path.parent / STATE_DIR / f"{self.path.stem}.journal.jsonl"
        self.lock_timeout = lock_timeout
        self.cache_min_bytes = CACHE_MIN_BYTES if cache_min_bytes is None else cache_min_bytes
        self.journal = journal  # False: every update writes the whole file (its batches still journal)
        self.bytes_written = 0  # YAML, cache and journal bytes this store wrote (the benchmarks report it)

    def check(self, status: RunsStatus) -> RunsStatus:
        """`status`, when it has every stage the plan has; else `StatusDamaged` (no plan given: unchecked)."""
        if self._expected is None:
            return status
        if self._expected_stages is None:
            self._expected_stages = list(self._expected())
        missing = missing_stages(status, self._expected_stages)
        if missing:
            raise StatusDamaged(self.path, missing, len(self._expected_stages))
        return status

    def backups(self) -> list[Path]:
        """The kept earlier versions of the file, newest first."""
        return [p for n in range(1, BACKUPS + 1) if (p := self.backup_dir / f"{self.path.name}.{n}").exists()]

    def _rotate_backups(self) -> None:
        """Keep the file on disk as backup 1 (a hard link: the rewrite replaces the path, not the inode)."""
        if not self.path.exists():
            return
        try:
            self.backup_dir.mkdir(parents=True, exist_ok=True)
            for n in range(BACKUPS - 1, 0, -1):
                older = self.backup_dir / f"{self.path.name}.{n}"
                if older.exists():
                    os.replace(older, self.backup_dir / f"{self.path.name}.{n + 1}")
            newest = self.backup_dir / f"{self.path.name}.1"
            try:
                os.link(self.path, newest)
            except OSError:  # no hard links here (some network filesystems): a copy
                atomic_write_bytes(newest, self.path.read_bytes(), durable=False)
        except OSError as error:
            log.warning("runs_status: no backup of %s kept in %s: %s", self.path, self.backup_dir, error)

    def _lock(self) -> FileLock:
        return FileLock(str(self.lock_path), timeout=self.lock_timeout)

    # ------------------------------------------------------------------ read cache

    def _cached(self, raw: bytes) -> tuple[bytes, _Written] | None:
        """(the status JSON, the run index) from the cache, if it was written for exactly `raw`."""
        digest = hashlib.sha256(raw).hexdigest()
        try:
            with self.cache_path.open("rb") as handle:
                header = json.loads(handle.readline())
                if header.get("format") != CACHE_FORMAT or header.get("yaml_sha256") != digest:
                    return None
                return handle.read(), _Written(raw, _run_index(header.get("runs"), raw))
        except (OSError, ValueError, AttributeError):  # no cache, unreadable, not our JSON
            return None

    def _write_cache(self, raw: bytes, body: bytes, index: list[list[Any]]) -> None:
        """Best effort: a cache that cannot be written is only a slower next read."""
        header = {
            "format": CACHE_FORMAT, "yaml_file": self.path.name,
            "yaml_sha256": hashlib.sha256(raw).hexdigest(), "runs": index,
        }
        data = json.dumps(header).encode() + b"\n" + body
        try:
            self.cache_path.parent.mkdir(exist_ok=True)
            # not durable: the cache is checked before use
            atomic_write_bytes(self.cache_path, data, durable=False)
            self.bytes_written += len(data)
        except OSError as error:
            log.debug("runs_status: cache %s not written: %s", self.cache_path, error)

    def _drop_cache(self) -> None:
        try:
            self.cache_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            log.debug("runs_status: stale cache %s not removed: %s", self.cache_path, error)

    def _load(self, refresh: bool = True, check: bool = True) -> tuple[RunsStatus, Callable[[], RunsStatus], _Written]:
        """(the status, a function making an independent copy of it, the file as written) from one read.

        From the cache when it matches the YAML's bytes, else from the YAML (then, with `refresh`,
        cached for the next read, unless the file was replaced meanwhile); the journal's runs
        over either.
        """
        try:
            seen = self.path.stat()
        except OSError:
            seen = None  # read_bytes says what is wrong
        raw = read_bytes(self.path, "YAML file")
        journal = status_journal.read_journal(self.journal_path, raw) if self.journal_path.exists() else None
        cached = self._cached(raw) if len(raw) >= self.cache_min_bytes else None
        if cached is not None:
            body, written = cached
            try:
                status = _with_journal(RunsStatus.model_validate_json(body), journal, self.journal_path)
                if check:
                    self.check(status)
                again = lambda: _with_journal(RunsStatus.model_validate_json(body), journal, self.journal_path)  # noqa: E731
                return status, again, written._replace(journal=journal)
            except ValidationError:
                log.warning("runs_status: ignoring the unreadable cache %s", self.cache_path)
        data = parse_yaml(raw, self.path)
        status = parse_status(data, self.path)
        if len(raw) >= self.cache_min_bytes and refresh and seen is not None and _same_file(seen, self.path):
            self._write_cache(raw, _json(status.model_dump(mode="json")), [])
        status = _with_journal(status, journal, self.journal_path)
        if check:
            self.check(status)
        return (status, lambda: _with_journal(parse_status(data, self.path), journal, self.journal_path),
                _Written(raw, {}, journal))

    def _persist(self, data: dict[str, Any], now: str, before: _Written | None = None, full: bool = False) -> None:
        """Append the changed runs to the journal when that is cheaper and not due (or `full`); else write all.

        A full write: the YAML (atomically, durably), then its cache (when the file is large),
        then the journal is removed (it is part of the YAML now).
        """
        try:
            if before is not None and not full and self.journal and self._journaled(data, before):
                return
            raw, body, index = _render(data, now, before)
            self._rotate_backups()
            atomic_write_bytes(self.path, raw)
        except OSError as error:  # a full disk, a read-only or immutable file: said with the file's name
            raise _write_error(self.path, error) from None
        self.bytes_written += len(raw)
        if len(raw) >= self.cache_min_bytes:
            self._write_cache(raw, body, index)
        elif self.cache_path.exists():
            self._drop_cache()
        status_journal.remove(self.journal_path)

    def _journaled(self, data: dict[str, Any], before: _Written) -> bool:
        """Append the runs of `data` that differ from what readers see; False when a full write is due."""
        runs = data.get("runs")
        if not before.runs or list(data) != ["run_group", "runs"] or not isinstance(runs, dict) \
                or runs.keys() != before.runs.keys():
            return False  # small file, no index, or runs added or removed: write it all
        lines = [status_journal.entry_line(name, entry) for name, entry in runs.items()
                 if before.fingerprint(name) != _fingerprint(name, entry)]
        adding = sum(len(line) for line in lines)
        journal = before.journal
        if journal is None and adding > status_journal.FOLD_FRACTION * len(before.raw):
            return False
        if journal is not None and journal.due(len(before.raw), adding):
            return False
        if lines:
            status_journal.append(self.journal_path, before.raw, journal, lines)
            self.bytes_written += adding
        return True

    # ------------------------------------------------------------------ public API

    def read(self, check: bool = True) -> RunsStatus:
        """The current content (no lock needed: the file is only ever replaced atomically).

        Read again when a writer replaced the file meanwhile (it may then have removed the journal
        this read would have applied to the older bytes). `check=False`: a damaged file is read
        as it is (restoring it), not refused.
        """
        with gc_paused():
            for _ in range(5):
                try:
                    seen = self.path.stat()
                except OSError:
                    break
                status = self._load(check=check)[0]
                if _same_file(seen, self.path):
                    return status
            return self._load(check=check)[0]

    def write(self, status: RunsStatus, now: str | None = None) -> None:
        """Replace the whole file (creating it), under the lock. No terminal-state protection."""
        try:
            with self._lock().acquire(poll_interval=POLL_SECONDS), gc_paused():
                self._persist(status.model_dump(mode="json"), now or utc_now())
        except Timeout:
            raise StatusError(f"{self.path}: could not lock {self.lock_path} within {self.lock_timeout:g} s") from None

    def flush(self, max_age_s: float = 0.0) -> bool:
        """Fold a journal at least `max_age_s` old into runs_status.yaml; whether one was folded."""
        if not self.journal_path.exists():
            return False
        try:
            with self._lock().acquire(poll_interval=POLL_SECONDS), gc_paused():
                status, _, before = self._load(refresh=False)
                if before.journal is None or before.journal.age() < max_age_s:
                    return False
                self._persist(status.model_dump(mode="json"), utc_now(), before, full=True)
                return True
        except Timeout:
            return False  # a writer holds it: it folds when due

    def update(self, fn: Updater, *, force: bool = False, strict: bool = False, now: str | None = None) -> RunsStatus:
        """Read, apply `fn` (mutate the status, or return a new RunsStatus), write back atomically.

        Without `force`, terminal stages keep their state: such changes are dropped with a
        warning, or, with `strict`, raise `StatusError` and nothing is written.
        """
        try:
            with self._lock().acquire(poll_interval=POLL_SECONDS), gc_paused():
                # in a function of its own: its intermediate objects are freed before the collector resumes
                return self._update_locked(fn, force, strict, now)
        except Timeout:
            raise StatusError(f"{self.path}: could not lock {self.lock_path} within {self.lock_timeout:g} s") from None

    @contextmanager
    def batch(self) -> Iterator[StatusBatch]:
        """Hold the lock for many small changes (a submission pass): each is on disk when it returns.

        `StatusBatch.change` appends the run's entry to the journal (fsynced), so a job id is
        recorded before the next sbatch without rewriting the file; the journal is folded on exit
        when due.
        """
        try:
            lock = self._lock().acquire(poll_interval=POLL_SECONDS)
        except Timeout:
            raise StatusError(f"{self.path}: could not lock {self.lock_path} within {self.lock_timeout:g} s") from None
        with lock:
            with gc_paused():
                status, _, before = self._load(refresh=False)
            batch = StatusBatch(self, status, before)
            yield batch
            journal = batch.before.journal
            if journal is not None and (not batch.before.runs or journal.due(len(batch.before.raw))):
                with gc_paused():
                    self._persist(batch.status.model_dump(mode="json"), utc_now(), batch.before, full=True)

    def _update_locked(self, fn: Updater, force: bool, strict: bool, now: str | None) -> RunsStatus:
        """`update`'s work, under the lock: parse once, apply, validate, protect, write once."""
        draft, copy, before = self._load(refresh=False)  # (the write below caches the new content)
        finished = set() if force else {(run, key) for run, key, stage in draft.stages() if stage.is_terminal}
        result = fn(draft)
        chosen = result if isinstance(result, RunsStatus) else draft  # fn may mutate and return anything
        try:  # a well-typed tree (the usual case): its dump is also the dump of its validated copy
            dumped: dict[str, Any] = chosen.model_dump(mode="json", warnings="error")
            new = parse_status(dumped, self.path)
            data: dict[str, Any] | None = dumped if _dump_is_final(dumped) else None
        except PydanticSerializationError:  # e.g. a raw dict appended to a list of models
            data = None
            new = parse_status(chosen.model_dump(mode="json"), self.path)
        if finished and any((run, key) in finished for run, key, stage in new.stages() if not stage.is_terminal):
            # a finished stage would be reopened: compare with an untouched copy of the file's status
            refused = protect_terminal(copy(), new)
            if refused and strict:
                raise StatusError(
                    f"{self.path}: refused to reopen finished stages (use force=True): " + "; ".join(refused)
                )
            for item in refused:
                log.warning("runs_status: kept terminal state of %s (use force=True to override)", item)
            data = None if refused else data
        self._persist(new.model_dump(mode="json") if data is None else data, now or utc_now(), before)
        return new


class StatusBatch:
    """The status under one held lock: per-run changes journaled as they are made (`StatusStore.batch`)."""

    def __init__(self, store: StatusStore, status: RunsStatus, before: _Written):
        self.store, self.status, self.before = store, status, before

    def change(self, run: str, key: str, fn: Callable[[StageStatus], Any], force: bool = False) -> bool:
        """Apply `fn` to one stage and journal its run (fsynced).

        False, and nothing written, when that would reopen a finished stage (unless `force`).
        The run's entry is replaced by a validated copy: read it again from `self.status`.
        """
        entry = self.status.runs[run]
        stage = entry.finetune if key == FINETUNE else entry.evaluations[key]
        kept = stage.model_copy(deep=True)
        fn(stage)
        if kept.is_terminal and not stage.is_terminal and not force:
            log.warning("runs_status: kept terminal state of %s/%s (use force=True to override)", run, key)
            self._put(run, key, kept)
            return False
        valid = RunStatus.model_validate(entry.model_dump(mode="json"))  # a bad value fails here, unwritten
        self.status.runs[run] = valid
        line = status_journal.entry_line(run, valid.model_dump(mode="json"))
        try:
            journal = status_journal.append(self.store.journal_path, self.before.raw, self.before.journal, [line])
        except OSError as error:
            raise _write_error(self.store.journal_path, error) from None
        self.store.bytes_written += len(line)
        self.before = self.before._replace(journal=journal)
        return True

    def _put(self, run: str, key: str, stage: StageStatus) -> None:
        entry = self.status.runs[run]
        if key == FINETUNE:
            entry.finetune = stage
        else:
            entry.evaluations[key] = stage


def _write_error(path: Path, error: OSError) -> FileSystemError:
    """The OSError of a status write, naming the file it was for (nothing was half-written: writes are atomic)."""
    found = domain_error(error)
    cause = found.cause if isinstance(found, FileSystemError) else "other"
    hint = str(found).split(": ", 1)[-1] if found is not None else str(error)
    return FileSystemError(str(path), cause, f"not updated ({hint})")


def _with_journal(status: RunsStatus, journal: Journal | None, source: Path | None = None) -> RunsStatus:
    """`status` with the journal's runs put in (validated); unchanged without a journal.

    An entry that does not validate is a `FileFormatError` naming the journal (`source`) and the run.
    """
    if journal is not None:
        for run, entry in journal.runs.items():
            try:
                status.runs[run] = RunStatus.model_validate(entry)
            except ValidationError as error:
                problems = "; ".join(f"{p.field}: {p.message}" for p in problems_from_validation(error, run))
                raise FileFormatError(source or "runs_status journal",
                                      f"run {run}'s entry is invalid ({problems}); move this file away to "
                                      "use runs_status.yaml as it was last written in full") from None
    return status

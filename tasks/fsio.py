"""Crash-safe file writing and YAML helpers shared by every module that touches the disk.

Reads: YAML files (`read_yaml`). Writes: any text file atomically (`atomic_write_text`):
a temporary file in the same folder, fsync'ed, then `os.replace`d over the target, so a
reader sees either the old or the new content, never half a file. YAML is always produced
and parsed by PyYAML (`safe_dump` / `safe_load`), never by hand. `atomic_write_many` writes a
batch of files (a run group's generated files) the same way, with one round of fsyncs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import yaml

from tasks.errors import SweepflowError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# libyaml's safe loader/dumper when present: same results as the pure-Python ones, much faster
# (runs_status.yaml is re-read and re-written on every update)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# New files get the mode `open()` would give them (0o666 minus the umask), not mkstemp's 0o600.
_NEW_FILE_MODE = 0o666 & ~_current_umask()


class FileFormatError(SweepflowError):
    """A file sweepflow reads is missing, unreadable or does not hold what it should.

    Its message always names the file, so the researcher knows what to fix.
    """

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        self.detail = message
        super().__init__(f"{self.path}: {message}")


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside `path` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically; an existing file keeps its permission bits."""
    target = Path(path)
    folder = target.parent
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
    return target


_WRITE_THREADS = 16  # fsync waits on the disk, not the CPU: overlapped fsyncs share journal commits


def _parallel(fn: Any, items: list[Any]) -> None:
    """fn(item) for every item, in threads; the first error is raised after all have finished."""
    if len(items) < 4:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=min(_WRITE_THREADS, len(items))) as pool:
        list(pool.map(fn, items))


def atomic_write_many(files: Mapping[Path, str], modes: Mapping[Path, int] | None = None, encoding: str = "utf-8") -> None:
    """Write many files, each atomically, all temporary files first: no target changes on failure.

    Each file is written to a temporary sibling and fsync'ed (in threads, so the waits for the
    disk overlap); only when every one of them is on disk is each renamed over its target, and
    each folder fsync'ed once. A failure while writing (disk full, permission, ...) removes the
    temporary files and leaves every target as it was. `modes`: permission bits per file
    (default: an existing file keeps its own, a new one gets what `open()` would give it).
    The folders must exist.
    """
    modes = modes or {}
    staged: list[tuple[str, Path]] = []

    def stage(item: tuple[Path, str]) -> None:
        target, text = item
        mode = modes.get(target)
        if mode is None:
            try:
                mode = target.stat().st_mode & 0o7777
            except FileNotFoundError:
                mode = _NEW_FILE_MODE
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        staged.append((tmp, target))
        try:
            view = memoryview(text.encode(encoding))
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)

    try:
        _parallel(stage, [(Path(target), text) for target, text in files.items()])
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for tmp, target in sorted(staged, key=lambda pair: str(pair[1])):
        os.replace(tmp, target)
    _parallel(fsync_dir, sorted({target.parent for _, target in staged}))


def dump_yaml(data: Any) -> str:
    """YAML text of plain data (dicts keep their order; unicode stays readable)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def write_yaml(path: str | Path, data: Any) -> Path:
    """Write plain data as YAML, atomically. Files with a header comment use a template instead."""
    return atomic_write_text(path, dump_yaml(data))


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; `FileFormatError` naming the file when it is missing or not YAML."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(source, "file not found") from None
    except IsADirectoryError:
        raise FileFormatError(source, "is a folder, not a YAML file") from None
    except UnicodeDecodeError as error:
        raise FileFormatError(source, f"is not UTF-8 text: byte {error.start} cannot be decoded") from None
    except OSError as error:
        raise FileFormatError(source, f"cannot be read: {error.strerror or error}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise FileFormatError(source, f"is not valid YAML{at}: {getattr(error, 'problem', None) or error}") from None

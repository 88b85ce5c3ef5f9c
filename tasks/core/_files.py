"""Crash-safe file writing and YAML helpers shared by every module that touches the disk.

Reads: YAML files (`read_yaml`). Writes: any text file atomically (`atomic_write_text`):
a temporary file in the same folder, fsync'ed, then `os.replace`d over the target, so a
reader sees either the old or the new content, never half a file. YAML is always produced
and parsed by PyYAML (`safe_dump` / `safe_load`), never by hand. `atomic_write_many` writes a
batch of files (a run group's generated files) the same way, with one round of fsyncs.

Large files (runs_status.yaml of 10,000 jobs is ~3 MB) are read and written with Python's
cyclic garbage collector paused (`gc_paused`): the YAML loader and dumper allocate hundreds of
thousands of objects, and each allocation burst would otherwise trigger full collections of
the whole heap (measured: 2-3x the parse/dump time). `dump_yaml` builds PyYAML's node tree
itself for plain data (dict/list/str/None/bool/int/float) and lets libyaml's emitter write it,
with the emitter's Python callbacks memoized (`_FastDumper`): byte-for-byte what `yaml.dump`
writes, about twice as fast on a 3 MB runs_status.yaml (tasks/model/_status_file.py dumps it run by run,
which is faster still).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import os
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from tasks.core._errors import SweepflowError


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


def format_gib(gib: float) -> str:
    """A size given in GiB, in the unit that shows its real number: 0.004 -> '4.1 MiB', 230 -> '230.0 GiB'."""
    size = gib * 2**30
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


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
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write `data` to `path` atomically; an existing file keeps its permission bits.

    `durable=False` skips the fsyncs (for a cache that is checked before use): a crash may then
    leave the old content, the new one, or an empty file, never a mix of the two.
    """
    target = Path(path)
    folder = target.parent
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
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


def atomic_write_many(
    files: Mapping[Path, str], modes: Mapping[Path, int] | None = None, encoding: str = "utf-8"
) -> None:
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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (nestable; restored on exit, even on error)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_DUMP_OPTIONS: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "default_flow_style": False, "width": 100}
_STR, _NULL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _NotPlain(Exception):
    """The data is not plain JSON-like data (or shares a container): use yaml.dump itself."""


class _Children(list[Any]):
    """A mapping or sequence node's children, hashable by identity (see `_FastDumper`)."""

    __hash__ = object.__hash__  # type: ignore[assignment]


class _FastDumper(_Dumper):  # type: ignore[misc, valid-type]
    """The safe dumper, minus Python calls that cannot change its output (same text).

    libyaml's emitter calls back into Python for every node: `resolve` twice per scalar (does
    the text read back as the same type? regular expressions, per call) and the path-resolver
    hooks. Without path resolvers (PyYAML has none unless one is registered) the answer of
    `resolve` depends only on its arguments, so it is memoized with `functools.lru_cache` (C
    code; node children are `_Children`, hashable), and the hooks, which then do nothing, are
    replaced by C builtins that do nothing either.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.yaml_path_resolvers:
            self.resolve = functools.lru_cache(maxsize=None)(self.resolve)  # type: ignore[has-type]
            self.descend_resolver = slice  # (parent, index) -> ignored
            self.ascend_resolver = type(None)  # () -> None


def _plain_nodes(data: Any, dumper: Any) -> Any:
    """The node tree SafeRepresenter builds for `data` (block style, keys in order, no sorting).

    Plain data only: exact dict/list/str/None/bool/int/float; anything else, or a dict or list
    present twice (yaml.dump would write an anchor and an alias), raises `_NotPlain`.
    """
    seen: set[int] = set()

    def node(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return ScalarNode(_STR, value)
        if value is None:
            return ScalarNode(_NULL, "null")
        if kind is dict or kind is list:
            if id(value) in seen:
                raise _NotPlain
            seen.add(id(value))
            if kind is dict:
                return MappingNode(_MAP, _Children([(node(k), node(v)) for k, v in value.items()]), flow_style=False)
            return SequenceNode(_SEQ, _Children([node(item) for item in value]), flow_style=False)
        if kind is bool or kind is int or kind is float:
            return dumper.represent_data(value)  # SafeRepresenter's own text (floats: .inf, 1.0e-05, ...)
        raise _NotPlain

    return node(data)


class _LiteralDumper(_Dumper):  # type: ignore[misc, valid-type]
    """Multi-line strings as `|` literal blocks (templates, prompts a reader should see as written)."""


def _literal_str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar(_STR, value, style=style)


_LiteralDumper.add_representer(str, _literal_str)


def dump_yaml(data: Any, literal_blocks: bool = False) -> str:
    """YAML text of plain data (dicts keep their order; unicode stays readable).

    `literal_blocks`: write multi-line strings as `|` blocks (PyYAML falls back to quotes for a
    string a block cannot hold exactly, e.g. one with trailing spaces).
    """
    if literal_blocks:
        return yaml.dump(data, Dumper=_LiteralDumper, **_DUMP_OPTIONS)
    with gc_paused():
        stream = io.StringIO()
        dumper = _FastDumper(stream, **_DUMP_OPTIONS)
        try:
            try:
                root = _plain_nodes(data, dumper)
            except (_NotPlain, RecursionError):
                return yaml.dump(data, Dumper=_Dumper, **_DUMP_OPTIONS)
            dumper.open()
            dumper.serialize(root)
            dumper.close()
        finally:
            dumper.dispose()
            dumper.__dict__.clear()  # the memo (it holds every node) refers back to the dumper: no cycle left
        return stream.getvalue()


def write_yaml(path: str | Path, data: Any) -> Path:
    """Write plain data as YAML, atomically. Files with a header comment use a template instead."""
    return atomic_write_text(path, dump_yaml(data))


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """A file's bytes; `FileFormatError` naming the file when it is missing or unreadable."""
    source = Path(path)
    try:
        return source.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(source, "file not found") from None
    except IsADirectoryError:
        raise FileFormatError(source, f"is a folder, not a {what}") from None
    except OSError as error:
        raise FileFormatError(source, f"cannot be read: {error.strerror or error}") from None


def parse_yaml(data: bytes | str, source: str | Path) -> Any:
    """Parse YAML text (or UTF-8 bytes); `FileFormatError` naming `source` when it is not YAML."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise FileFormatError(source, f"is not UTF-8 text: byte {error.start} cannot be decoded") from None
    try:
        with gc_paused():
            return yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise FileFormatError(source, f"is not valid YAML{at}: {getattr(error, 'problem', None) or error}") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; `FileFormatError` naming the file when it is missing or not YAML."""
    return parse_yaml(read_bytes(path, "YAML file"), path)


def read_log_tail(path: str | Path, n_bytes: int = 65536) -> str:
    """The last `n_bytes` of a log as text ("" when it does not exist or cannot be read).

    A cut in the middle of a line drops that partial first line; bad UTF-8 is replaced.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            start = max(0, size - n_bytes)
            handle.seek(start)
            data = handle.read()
    except OSError:
        return ""
    if start > 0:
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else data
    return data.decode("utf-8", errors="replace")

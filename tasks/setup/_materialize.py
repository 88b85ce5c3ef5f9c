"""Write generated files into a run group idempotently, keeping the researcher's edits.

Reads: the group folder and its manifest `.sweepflow/manifest.yaml` (sha256 of each file as
sweepflow last wrote it). Writes: the generated files (each atomically; all are written to
temporary files before the first is renamed into place, so a write error changes nothing),
backups of overwritten edits (`<file>.bak-<timestamp>`), and the manifest (last, and only when
it changed). Files whose content is already right are not touched (their mtime stays).

A file whose content differs from what sweepflow last wrote was edited by someone: it is kept
unless `overwrite_edits` is set, and then the edited version is kept as a backup first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from tasks.core._files import FileFormatError, atomic_write_many, atomic_write_text, dump_yaml, read_yaml
from tasks.setup._files import GeneratedFile

MANIFEST = Path(".sweepflow") / "manifest.yaml"

Action = Literal["create", "update", "unchanged", "kept-edit", "overwrite-edit"]


class FileChange(BaseModel):
    """What writing one file does (create, update, unchanged, kept-edit, overwrite-edit), and its backup."""

    path: str
    action: Action
    backup: str | None = None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


MANIFEST_HEADER = "# sha256 of each file as sweepflow last wrote it (detects your edits)\n"


def read_manifest(group_dir: Path) -> dict[str, str]:
    """Path -> sha256 of each file as sweepflow last wrote it ({} before the first setup)."""
    path = group_dir / MANIFEST
    if not path.exists():
        return {}
    data = read_yaml(path) or {}
    if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
        raise FileFormatError(path, "is not a sweepflow manifest (expected files: {path: sha256})")
    return {str(k): str(v) for k, v in (data.get("files") or {}).items()}


def _manifest_text(manifest: dict[str, str]) -> str:
    return MANIFEST_HEADER + dump_yaml({"files": dict(sorted(manifest.items()))})


def _read_current(target: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return target.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def plan_changes(
    group_dir: Path, files: dict[str, GeneratedFile], overwrite_edits: bool = False,
    manifest: dict[str, str] | None = None,
) -> list[FileChange]:
    """What writing `files` would do, file by file (writes nothing)."""
    manifest = read_manifest(group_dir) if manifest is None else manifest
    changes: list[FileChange] = []
    for rel, generated in sorted(files.items()):
        current = _read_current(group_dir / rel)
        if current is None:
            changes.append(FileChange(path=rel, action="create"))
        elif current == generated.content:
            changes.append(FileChange(path=rel, action="unchanged"))
        elif manifest.get(rel) == _sha(current):
            changes.append(FileChange(path=rel, action="update"))
        else:
            changes.append(FileChange(path=rel, action="overwrite-edit" if overwrite_edits else "kept-edit"))
    return changes


def _mode(generated: GeneratedFile) -> int:
    return 0o755 if generated.executable else 0o644


def _make_folders(root: Path, rels: list[str]) -> list[Path]:
    """Create the parent folders of `rels` under root, each once; return those that were created."""
    created: list[Path] = []
    for folder in sorted({(root / rel).parent for rel in rels}):
        missing: list[Path] = []
        parent = folder
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        folder.mkdir(parents=True, exist_ok=True)
        created.extend(reversed(missing))
    return created


def _write_all(root: Path, files: dict[str, GeneratedFile], rels: list[str]) -> None:
    """Write files[rel] under root for every rel, each atomically.

    On a write error nothing is replaced and the folders made for the new files are removed again.
    """
    created = _make_folders(root, rels)
    try:
        atomic_write_many(
            {root / rel: files[rel].content for rel in rels},
            modes={root / rel: _mode(files[rel]) for rel in rels},
        )
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _backup_path(target: Path, stamp: str) -> Path:
    """`<file>.bak-<stamp>`, or `<file>.bak-<stamp>-N` when that exists already (never overwritten)."""
    backup = target.with_name(f"{target.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        backup = target.with_name(f"{target.name}.bak-{stamp}-{n}")
        n += 1
    return backup


def materialize(group_dir: Path, files: dict[str, GeneratedFile], overwrite_edits: bool = False) -> list[FileChange]:
    """Write the files; return what happened to each. Rendering is done before any write.

    Edited files being overwritten are backed up first; then every new or changed file is
    written (all temporary files before any rename: a write error changes nothing); the
    manifest comes last, and only when it changed. Unchanged files are not touched.
    """
    manifest = read_manifest(group_dir)
    old_manifest = dict(manifest)
    changes = plan_changes(group_dir, files, overwrite_edits, manifest)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for change in changes:
        if change.action == "overwrite-edit":
            target = group_dir / change.path
            backup = _backup_path(target, stamp)
            shutil.copy2(target, backup)
            change.backup = str(backup.relative_to(group_dir))
    to_write = [c.path for c in changes if c.action in ("create", "update", "overwrite-edit")]
    try:
        _write_all(group_dir, files, to_write)
    except BaseException:
        for change in changes:  # the edited files were not replaced: their backups are not needed
            if change.backup:
                with contextlib.suppress(OSError):
                    (group_dir / change.backup).unlink()
        raise
    for change in changes:
        if change.action != "kept-edit":
            manifest[change.path] = _sha(files[change.path].content)
    manifest_path = group_dir / MANIFEST
    if manifest != old_manifest or not manifest_path.exists():
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(manifest_path, _manifest_text(manifest))
    return changes


def dry_run(
    group_dir: Path, files: dict[str, GeneratedFile], overwrite_edits: bool = False
) -> tuple[Path, list[FileChange]]:
    """Render everything into a temporary folder and report what a real run would change."""
    changes = plan_changes(group_dir, files, overwrite_edits)
    preview = Path(tempfile.mkdtemp(prefix="sweepflow-dry-run-"))
    try:  # a throwaway folder: plain writes, no fsync
        _make_folders(preview, list(files))
        for rel, generated in files.items():
            target = preview / rel
            target.write_text(generated.content, encoding="utf-8", newline="")
            os.chmod(target, _mode(generated))
    except BaseException:
        shutil.rmtree(preview, ignore_errors=True)
        raise
    return preview, changes

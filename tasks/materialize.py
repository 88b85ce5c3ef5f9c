"""Write generated files into a run group idempotently, keeping the researcher's edits.

Reads: the group folder and its manifest `.sweepflow/manifest.yaml` (sha256 of each file as
sweepflow last wrote it). Writes: the generated files (each atomically), backups of
overwritten edits (`<file>.bak-<timestamp>`), and the manifest (last).

A file whose content differs from what sweepflow last wrote was edited by someone: it is kept
unless `overwrite_edits` is set, and then the edited version is kept as a backup first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel

from tasks.fsio import atomic_write_text
from tasks.setup_files import GeneratedFile

MANIFEST = Path(".sweepflow") / "manifest.yaml"

Action = Literal["create", "update", "unchanged", "kept-edit", "overwrite-edit"]


class FileChange(BaseModel):
    path: str
    action: Action
    backup: str | None = None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(group_dir: Path) -> dict[str, str]:
    path = group_dir / MANIFEST
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.get("files", {}).items()}


def plan_changes(group_dir: Path, files: dict[str, GeneratedFile], overwrite_edits: bool = False) -> list[FileChange]:
    """What writing `files` would do, file by file (writes nothing)."""
    manifest = read_manifest(group_dir)
    changes: list[FileChange] = []
    for rel, generated in sorted(files.items()):
        target = group_dir / rel
        if not target.exists():
            changes.append(FileChange(path=rel, action="create"))
            continue
        current = target.read_text(encoding="utf-8", errors="replace")
        if current == generated.content:
            changes.append(FileChange(path=rel, action="unchanged"))
        elif manifest.get(rel) == _sha(current):
            changes.append(FileChange(path=rel, action="update"))
        else:
            changes.append(FileChange(path=rel, action="overwrite-edit" if overwrite_edits else "kept-edit"))
    return changes


def _write(target: Path, generated: GeneratedFile) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, generated.content)
    mode = 0o755 if generated.executable else 0o644
    if target.stat().st_mode & 0o777 != mode:
        os.chmod(target, mode)


def materialize(group_dir: Path, files: dict[str, GeneratedFile], overwrite_edits: bool = False) -> list[FileChange]:
    """Write the files; return what happened to each. Rendering is done before any write."""
    changes = plan_changes(group_dir, files, overwrite_edits)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    manifest = read_manifest(group_dir)
    for change in changes:
        generated = files[change.path]
        target = group_dir / change.path
        if change.action == "overwrite-edit":
            backup = target.with_name(f"{target.name}.bak-{stamp}")
            shutil.copy2(target, backup)
            change.backup = str(backup.relative_to(group_dir))
        if change.action in ("create", "update", "overwrite-edit"):
            _write(target, generated)
        if change.action != "kept-edit":
            manifest[change.path] = _sha(generated.content)
    manifest_text = yaml.safe_dump({"files": dict(sorted(manifest.items()))}, sort_keys=False)
    (group_dir / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(group_dir / MANIFEST, "# sha256 of each file as sweepflow last wrote it (detects your edits)\n" + manifest_text)
    return changes


def dry_run(group_dir: Path, files: dict[str, GeneratedFile], overwrite_edits: bool = False) -> tuple[Path, list[FileChange]]:
    """Render everything into a temporary folder and report what a real run would change."""
    preview = Path(tempfile.mkdtemp(prefix="sweepflow-dry-run-"))
    for rel, generated in files.items():
        _write(preview / rel, generated)
    return preview, plan_changes(group_dir, files, overwrite_edits)

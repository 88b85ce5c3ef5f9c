"""Read a run group's plan (`experiment.yaml`), through a JSON read cache.

Reads: `{group}/experiment.yaml`, `{group}/.sweepflow/experiment.cache.json`.
Writes: the cache (best effort; it is used only for exactly the YAML bytes it was made from).
Planning's `deliver_plan` writes experiment.yaml; every later stage reads it here.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from tasks.core._files import FileFormatError, atomic_write_bytes, parse_yaml, read_bytes
from tasks.model._design_file import problems_from_validation
from tasks.model._layout import GroupLayout
from tasks.model._plan import Plan

PLAN_CACHE_FORMAT = 1


def load_plan(group_dir: str | Path) -> Plan:
    """The Plan of a run group, from its experiment.yaml; errors name the file and the field.

    Every flow reads the plan, the scheduled sync every few minutes; parsing the YAML of a
    1,000-run plan takes about 0.5 s, so a JSON copy of the validated plan is kept in
    `.sweepflow/experiment.cache.json`, used only for exactly the bytes it was made from
    (their sha256) and the same Plan model; experiment.yaml stays the only truth.
    """
    layout = GroupLayout(Path(group_dir))
    path = layout.plan_file
    raw = read_bytes(path, "YAML file")
    digest = hashlib.sha256(raw).hexdigest()
    cached = _cached_plan(layout.plan_cache, digest)
    if cached is not None:
        return cached
    data = parse_yaml(raw, path)
    if not isinstance(data, dict):
        raise FileFormatError(path, "is not a sweepflow plan (expected a mapping with run_group:, design:, runs:, ...)")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{p.field}: {p.message}" for p in problems_from_validation(error, str(path)))
        raise FileFormatError(path, f"is not a valid sweepflow plan: {problems}") from None
    write_plan_cache(layout.root, raw, plan)
    return plan


@functools.cache
def _plan_model_fingerprint() -> str:
    """Changes when sweepflow's Plan model does: a cache written by another version is not used."""
    return hashlib.sha256(json.dumps(Plan.model_json_schema(), sort_keys=True).encode()).hexdigest()[:16]


def _cache_header(digest: str) -> dict[str, object]:
    return {"format": PLAN_CACHE_FORMAT, "model": _plan_model_fingerprint(), "yaml_sha256": digest}


def write_plan_cache(group: Path, raw: bytes, plan: Plan) -> None:
    """Best effort: without the cache the next read is only slower."""
    header = json.dumps(_cache_header(hashlib.sha256(raw).hexdigest()))
    cache = GroupLayout(group).plan_cache
    try:
        cache.parent.mkdir(exist_ok=True)
        atomic_write_bytes(cache, header.encode() + b"\n" + plan.model_dump_json().encode(), durable=False)
    except OSError:
        pass


def _cached_plan(cache: Path, digest: str) -> Plan | None:
    """The plan from the cache, if it was written for experiment.yaml's current bytes."""
    try:
        with cache.open("rb") as handle:
            header = json.loads(handle.readline())
            if header != _cache_header(digest):
                return None
            return Plan.model_validate_json(handle.read())
    except (OSError, ValueError):  # no cache, unreadable, not our JSON, or a Plan model that changed
        return None

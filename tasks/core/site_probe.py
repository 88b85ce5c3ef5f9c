"""The body of a site-check job: can this node, in the job's Python, open what the sweep will open?

Run by path in the job environment, after the preflight (standard library at the top; torchtune
and transformers are imported inside the checks, so a missing one is a finding, not a crash):

    python /path/to/sweepflow/tasks/core/site_probe.py --spec site_check_spec.json --record site_probe.json

The spec (JSON, written by `tasks/setup/_site_check.py`) names each planned model (its folder,
the torchtune tokenizer builder and files, the checkpoint files, the registry's hidden size),
the registered inspect tasks the evaluations name (`package/task`: each must resolve in the
job's Python, as `inspect eval` will resolve it) and the folders whose free space matters.
For each model the probe reads `config.json`, builds the torchtune tokenizer exactly as the
fine-tune's config will, loads the Hugging Face tokenizer offline as inspect's hf/ provider does,
and checks the checkpoint files are there and non-empty.
Prints `sweepflow site-check: ok: ...` or `sweepflow site-check: FAILED: ...` and exits 0 or 86.
Reads: the spec, the model folders. Writes: the `--record` JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

EXIT_CODE = 86
OK_MARK = "sweepflow site-check: ok:"
FAILED_MARK = "sweepflow site-check: FAILED:"


def _config_problem(folder: Path, hidden_size: int) -> str | None:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"{path} cannot be read: {error}"
    if config.get("hidden_size") != hidden_size:
        return f"{path}: hidden_size {config.get('hidden_size')}, the registry says {hidden_size} (another model?)"
    return None


def _torchtune_tokenizer(folder: Path, component: str, files: dict[str, str]) -> str:
    module, _, name = component.rpartition(".")
    builder = getattr(importlib.import_module(module), name)
    tokenizer = builder(**{arg: str(folder / rel) for arg, rel in files.items()})
    return f"torchtune tokenizer ({len(tokenizer.encode('site check', add_bos=False, add_eos=False))} ids for a probe)"


def _hf_tokenizer(folder: Path) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return f"HF tokenizer {type(tokenizer).__name__}"


def probe_model(model: dict[str, Any]) -> dict[str, Any]:
    """{name, ok, detail} for one planned model."""
    folder = Path(model["dir"])
    problem = _config_problem(folder, int(model["hidden_size"]))
    if problem:
        return {"name": model["name"], "ok": False, "detail": problem}
    missing = [f for f in model["checkpoint_files"] if not (folder / f).is_file() or (folder / f).stat().st_size == 0]
    if missing:
        return {"name": model["name"], "ok": False, "detail": f"missing or empty under {folder}: {', '.join(missing)}"}
    loaded = []
    for what, load in (
        ("torchtune tokenizer", lambda: _torchtune_tokenizer(folder, model["tokenizer"], model["tokenizer_files"])),
        ("Hugging Face tokenizer", lambda: _hf_tokenizer(folder)),
    ):
        try:
            loaded.append(load())
        except Exception as error:  # any failure to load is the finding itself
            return {"name": model["name"], "ok": False,
                    "detail": f"{what} of {folder} cannot be loaded: {type(error).__name__}: {error}"}
    return {"name": model["name"], "ok": True, "detail": f"config.json matches; {'; '.join(loaded)}"}


def probe_task(name: str) -> dict[str, Any]:
    """{name, ok, detail} for one registered inspect task (`package/task`), resolved as `inspect eval` will."""
    try:
        from inspect_ai._util.registry import registry_lookup

        found = registry_lookup("task", name)
    except Exception as error:  # inspect missing, or the package's import fails: the finding itself
        return {"name": name, "ok": False, "detail": f"inspect cannot load it: {type(error).__name__}: {error}"}
    if found is None:
        return {"name": name, "ok": False,
                "detail": "inspect has no registered task of this name in the job's Python (is its package installed?)"}
    return {"name": name, "ok": True, "detail": "registered task resolves"}


def free_space(folders: dict[str, str]) -> dict[str, float]:
    """Free GiB under each folder (its nearest existing parent)."""
    free = {}
    for label, name in folders.items():
        path = Path(name)
        while not path.exists() and path != path.parent:
            path = path.parent
        free[label] = round(shutil.disk_usage(path).free / 1024**3, 1)
    return free


def main(argv: list[str] | None = None) -> int:
    """Probe every model in the spec, print one line, exit 0 or EXIT_CODE."""
    parser = argparse.ArgumentParser(prog="site_probe.py", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the JSON spec written by the site check")
    parser.add_argument("--record", required=True, help="write the findings to this JSON file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    models = [probe_model(m) for m in spec["models"]]
    tasks = [probe_task(name) for name in spec.get("inspect_tasks", [])]
    free = free_space(spec["folders"])
    found = {"models": models, "tasks": tasks, "free_gib": free, "seconds": round(time.monotonic() - started, 1)}
    Path(args.record).write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    bad = [f"{m['name']}: {m['detail']}" for m in models + tasks if not m["ok"]]
    if bad:
        print(f"{FAILED_MARK} {'; '.join(bad)}", flush=True)
        return EXIT_CODE
    space = ", ".join(f"{label} {gib} GiB free" for label, gib in free.items())
    resolved = f"; {len(tasks)} registered task(s) resolve ({', '.join(t['name'] for t in tasks)})" if tasks else ""
    print(f"{OK_MARK} {len(models)} model(s) load ({', '.join(m['name'] for m in models)}){resolved}; {space}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The first step of every job: does the job's own Python hold what the job needs?

Run by path, in the job environment, before torchtune or inspect start (standard library only,
so it imports no sweepflow package and needs nothing of the orchestrator's environment):

    python /path/to/sweepflow/tasks/core/preflight.py --stage finetune --device cuda --gpus 2 \
        --require torchtune==0.6.1 --require torchao==0.15.0 --record job_env.json

Checks: each `--require` package is installed (at the exact version when one is given), torch
imports, and with `--device cuda` that CUDA is available and at least `--gpus` GPUs are visible.
Prints one line, `sweepflow preflight: ok: ...` (the Python, the versions, the GPUs), or
`sweepflow preflight: FAILED: <what is wrong>` and exits with `EXIT_CODE` (86), which sync
classifies as an environment error: not retried, the line shown as the reason.
`--record FILE` writes what was found as JSON (the job side's versions, for provenance).
Reads: the installed package metadata. Writes: the `--record` file, if asked.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

EXIT_CODE = 86
OK_MARK = "sweepflow preflight: ok:"
FAILED_MARK = "sweepflow preflight: FAILED:"


def failure_line(log_text: str, mark: str = FAILED_MARK) -> str | None:
    """What the preflight (or another check printing `mark`) said was wrong, from a job log's text; None if nothing."""
    for line in reversed(log_text.splitlines()):
        if mark in line:
            return line.split(mark, 1)[1].strip()
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_packages(requirements: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """({package: installed version or None}, problems) for `name` or `name==version` requirements."""
    found: dict[str, str | None] = {}
    problems = []
    for requirement in requirements:
        name, _, wanted = requirement.partition("==")
        have = _version(name)
        found[name] = have
        if have is None:
            problems.append(f"{name} is not installed" + (f" (sweepflow needs {name}=={wanted})" if wanted else ""))
        elif wanted and have.split("+")[0] != wanted:
            problems.append(f"{name} {have} is installed, sweepflow needs exactly {wanted}")
    return found, problems


def check_device(device: str, gpus: int) -> tuple[dict[str, Any], list[str]]:
    """What torch sees ({torch, cuda, gpus: [names and memory]}), and the problems against the request."""
    try:
        import torch
    except Exception as error:  # not installed, or a broken build (missing CUDA libraries, ...)
        return {}, [f"torch cannot be imported: {type(error).__name__}: {error}"]
    seen: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": []}
    available = bool(torch.cuda.is_available())
    if available:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            seen["gpus"].append(f"{props.name} ({props.total_memory / 1024**3:.0f} GiB)")
    if device != "cuda":
        return seen, []
    if not available:
        build = "a CPU-only torch build" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
        return seen, [f"device cuda was asked for, but torch.cuda.is_available() is False ({build})"]
    if len(seen["gpus"]) < gpus:
        return seen, [f"{gpus} GPUs were asked for, {len(seen['gpus'])} are visible (CUDA_VISIBLE_DEVICES?)"]
    return seen, []


def preflight(stage: str, device: str, gpus: int, requirements: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Everything found, and every problem (empty: the job may start)."""
    packages, problems = check_packages(requirements)
    seen, device_problems = check_device(device, gpus)
    found = {
        "stage": stage, "host": platform.node(), "python": platform.python_version(), "executable": sys.executable,
        "device": device, "packages": packages, **seen,
    }
    return found, problems + device_problems


def summary(found: dict[str, Any]) -> str:
    """The one `ok` line: the Python, the versions, the GPUs."""
    versions = ", ".join(f"{name} {version}" for name, version in found["packages"].items())
    gpus = found.get("gpus") or []
    where = f"{len(gpus)} x {gpus[0]}" if gpus else "no GPU"
    return f"python {found['python']} ({found['executable']}), torch {found.get('torch')}, {versions}; {where}"


def main(argv: list[str] | None = None) -> int:
    """Check, print one line, exit 0 or EXIT_CODE."""
    parser = argparse.ArgumentParser(prog="preflight.py", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["finetune", "eval", "site-check"], required=True)
    parser.add_argument("--device", choices=["cuda", "cpu"], required=True)
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--require", action="append", default=[], help="package or package==version")
    parser.add_argument("--record", help="write what was found to this JSON file")
    args = parser.parse_args(argv)
    found, problems = preflight(args.stage, args.device, args.gpus, args.require)
    found["problems"] = problems
    if args.record:
        Path(args.record).write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    if problems:
        print(f"{FAILED_MARK} {'; '.join(problems)} (job Python {sys.executable})", flush=True)
        return EXIT_CODE
    print(f"{OK_MARK} {summary(found)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Delay from each fine-tune's end to the start of its chained evaluations, on a real cluster.

Usage: python benchmarks/chain_delay.py RUN_GROUP_DIR   (after launch-runs finished on SLURM
with accounting; needs SLURM_CONF). Reads runs_status.yaml for job ids and asks `sacct` once
for their Start/End times (or `scontrol show job` per job when accounting is off). Prints one line per evaluation and the minimum / median delay.
An evaluation can also wait for free CPUs/GPUs (Reason=Resources); the delay then includes
that queueing, so the minimum is the scheduler's own reaction time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tasks.model._layout import STATUS_FILE
from tasks.model._status_file import StatusStore


def job_times(ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (start, end): one sacct call, or scontrol per job when accounting is off."""
    done = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(ids), "-o", "JobID,Start,End"], capture_output=True, text=True)
    times: dict[str, tuple[str, str]] = {}
    if done.returncode == 0:
        for line in done.stdout.splitlines():
            job, start, end = line.split("|")
            times[job] = (start, end)
        return times
    for job in ids:  # no accounting: slurmctld still knows jobs for MinJobAge
        fields = dict(
            item.split("=", 1) for item in subprocess.run(
                ["scontrol", "show", "job", "-o", job], capture_output=True, text=True
            ).stdout.split() if "=" in item
        )
        times[job] = (fields.get("StartTime", ""), fields.get("EndTime", ""))
    return times


def main(group_dir: str) -> int:
    status = StatusStore(Path(group_dir) / STATUS_FILE).read()
    pairs: list[tuple[str, str, str]] = []  # (run/key, finetune job, eval job)
    for run, entry in status.runs.items():
        parent = entry.finetune.job_id
        if not parent:
            continue
        for key, stage in entry.evaluations.items():
            if stage.job_id:
                pairs.append((f"{run}/{key}", parent, stage.job_id))
    ids = sorted({j for _, a, b in pairs for j in (a, b)}, key=int)
    if not ids:
        print("no chained evaluations with job ids in", group_dir)
        return 1
    times = job_times(ids)
    delays = []
    for name, parent, child in pairs:
        try:
            end = datetime.fromisoformat(times[parent][1])
            start = datetime.fromisoformat(times[child][0])
        except (KeyError, ValueError):
            print(f"{name}: no start/end recorded")
            continue
        delay = (start - end).total_seconds()
        delays.append(delay)
        print(f"{name}: fine-tune {parent} ended {end:%H:%M:%S}, evaluation {child} started {start:%H:%M:%S}: {delay:.0f} s")
    if delays:
        print(f"delay fine-tune end -> evaluation start: min {min(delays):.0f} s, median {statistics.median(delays):.0f} s, n={len(delays)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else 2)

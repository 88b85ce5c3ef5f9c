"""Benchmark: syncing the status of 10,000 jobs.

Part 1 (here): parse time of ONE 10,000-line `sacct -X -P -n -o JobID,JobName,State,
ExitCode,Elapsed,MaxRSS,NodeList,Reason` answer, the text `SlurmBackend.query` gets for a
10,000-job sweep. The lines are synthesized from the REAL recorded lines in
tests/fixtures/slurm/sacct_X_P_n.txt (every outcome: COMPLETED, FAILED, OUT_OF_MEMORY,
TIMEOUT, `CANCELLED by 0`, pending on a dependency, array tasks), renumbered 1..N.
(Part 2, the time to persist the statuses, is added separately.)

    python benchmarks/sync_10000.py [--jobs 10000] [--repeat 5]

Reads: the fixture file. Writes: nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.backends.slurm import parse_sacct  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "slurm" / "sacct_X_P_n.txt"


def synth_sacct(n_jobs: int) -> str:
    """`n_jobs` sacct lines cycling through the recorded ones, job ids 1..n (array tasks ID_0)."""
    recorded = [ln.split("|") for ln in FIXTURE.read_text().splitlines() if ln.strip()]
    lines = []
    for i in range(n_jobs):
        fields = list(recorded[i % len(recorded)])
        fields[0] = f"{i + 1}_0" if "_" in fields[0] else str(i + 1)
        fields[1] = f"sweep_run_{i:05d}"
        lines.append("|".join(fields))
    return "\n".join(lines) + "\n"


def bench_parse(n_jobs: int, repeat: int) -> dict[str, float]:
    text = synth_sacct(n_jobs)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jobs = parse_sacct(text)
        times.append(time.perf_counter() - t0)
    assert len(jobs) == n_jobs, len(jobs)
    return {"parse_best_s": min(times), "parse_median_s": sorted(times)[len(times) // 2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = bench_parse(args.jobs, args.repeat)
    print(f"sacct parse, {args.jobs} lines: best {result['parse_best_s']:.4f} s, "
          f"median {result['parse_median_s']:.4f} s ({args.repeat} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

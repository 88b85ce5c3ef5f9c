"""How often does the fine-tuned-vs-base interval for 0/1 scores cover the true difference, and how wide is it?

Usage: python benchmarks/discordant_coverage.py [DRAWS]   (default 1,000 draws per scenario; ~1.5 min)

Simulates paired 0/1 outcomes (multinomial: only the fine-tune right p10, only the base right p01,
the rest concordant) for several test sizes and prints, per scenario, the coverage and mean width
of three 95 % intervals for p10 - p01:
- `discordant`: tasks.results._paired.discordant_interval (what effects.csv reports; agrees with
  the exact McNemar test);
- `conditional`: the same with the discordant share held at its estimate (the shortcut it avoids);
- `wald`: the normal-theory paired interval, for the width comparison only.
With no discordant item, `discordant` is the Clopper-Pearson bounds effects.csv then reports.
Reads and writes nothing.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from scipy.stats import binomtest

from tasks.results._paired import _exact_bounds, discordant_interval

SCENARIOS = [(0.1, 0.1), (0.15, 0.05), (0.25, 0.0), (0.05, 0.0), (0.3, 0.02), (0.02, 0.01)]
SIZES = (50, 200, 500)
ALPHA = 0.05


def _conditional(gained: int, lost: int, n: int) -> tuple[float, float]:
    ci = binomtest(gained, gained + lost).proportion_ci(confidence_level=1 - ALPHA, method="exact")
    share = (gained + lost) / n
    return share * (2 * ci.low - 1), share * (2 * ci.high - 1)


def _wald(gained: int, lost: int, n: int) -> tuple[float, float]:
    d = (gained - lost) / n
    half = 1.959964 * math.sqrt(max((gained + lost) / n - d * d, 0.0) / n)
    return d - half, d + half


def main(draws: int) -> None:
    """Print one line per scenario: coverage and mean width of each interval."""
    rng = np.random.default_rng(2026)
    print("n    p10   p01   | discordant cover/width | conditional cover/width | wald cover/width")
    for n in SIZES:
        for p10, p01 in SCENARIOS:
            truth, tally = p10 - p01, {"discordant": [0, 0.0], "conditional": [0, 0.0], "wald": [0, 0.0]}
            for _ in range(draws):
                gained, lost, _ = rng.multinomial(n, [p10, p01, 1 - p10 - p01])
                none = gained + lost == 0  # no discordant item: effects.csv's bounds, the others a point at 0
                for name, make in (("discordant", lambda: _exact_bounds(np.zeros(n), ALPHA) if none  # noqa: B023
                                    else discordant_interval(gained, lost, n, ALPHA)),  # noqa: B023
                                   ("conditional", lambda: (0.0, 0.0) if none else _conditional(gained, lost, n)),  # noqa: B023
                                   ("wald", lambda: _wald(gained, lost, n))):  # noqa: B023
                    low, high = make()
                    tally[name][0] += low <= truth <= high
                    tally[name][1] += high - low
            cells = " | ".join(f"{t[0] / draws:.3f} / {t[1] / draws:.3f}" for t in tally.values())
            print(f"{n:<4} {p10:<5} {p01:<5} | {cells}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000)

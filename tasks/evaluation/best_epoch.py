"""Pick the epoch with the lowest end-of-epoch validation loss (evaluation.epochs: best).

Reads: `{run_dir}/validation_loss.jsonl`, written by sweepflow's `_val` recipes
(`{"epoch", "step", "val_loss", "epoch_end"}` per line). Writes: nothing.
`python -m tasks.evaluation.best_epoch RUN_DIR` prints the checkpoint folder (`RUN_DIR/epoch_N`) for
the evaluation script, or explains on stderr why it cannot (exit 1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VALIDATION_FILE = "validation_loss.jsonl"


class NoBestEpoch(Exception):
    """No best epoch: no validation file, a malformed record, or no loss for a saved epoch."""


def best_epoch(run_dir: Path) -> int:
    """The epoch whose end-of-epoch validation loss is lowest (the earliest on a tie)."""
    path = run_dir / VALIDATION_FILE
    if not path.exists():
        raise NoBestEpoch(f"{path}: not found (was the fine-tune run with validation on?)")
    losses: dict[int, float] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record.get("epoch_end"):
                losses[int(record["epoch"])] = float(record["val_loss"])
        except (ValueError, KeyError, TypeError) as error:
            raise NoBestEpoch(f"{path}, line {number}: not a validation record ({error})") from None
    saved = {e: loss for e, loss in losses.items() if (run_dir / f"epoch_{e}").is_dir()}
    if not saved:
        raise NoBestEpoch(f"{path}: no end-of-epoch validation loss for a saved epoch_N/ folder")
    return min(sorted(saved), key=lambda e: saved[e])


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.evaluation.best_epoch RUN_DIR`: print the best epoch's checkpoint folder."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tasks.evaluation.best_epoch RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    try:
        print(run_dir / f"epoch_{best_epoch(run_dir)}")
    except NoBestEpoch as error:
        print(f"best epoch: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The della-shaped design of issue 20: its plan's figures and how long planning its 10,000-sample dataset takes.

Builds, in a temporary folder, the della-shaped site of tests/support/della.py (real Llama-3.2
1B/3B config dims, Meta's tokenizer, sparse real-size weights, a 10,000-word dataset, a prior
run folder whose log says `Model checkpoint of size 2.30 GiB saved` beside placeholder
epoch_* folders) and plans a 2 models x 2 ranks design over it (2 epochs, packed, 2,048 tokens),
then the same site with 2 models x 360 ranks (722 runs with the controls). Prints, per model:
disk per epoch and its source, samples per pack, steps per epoch; the length of runs_plan.md;
and the planning time (first plan in a fresh process, so torchtune's import is counted, then again).

    python benchmarks/plan_della.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.core._errors import DesignError  # noqa: E402
from tasks.model._design_file import parse_design  # noqa: E402
from tests.support.della import della_design  # noqa: E402


def plan_once(root: Path, ranks: list[int]) -> tuple[object, float]:
    """The della design with these ranks, planned over a site made under `root`, and the seconds it took."""
    from tasks.planning._planner import build_plan

    started = time.perf_counter()
    design = parse_design(della_design(root, ranks=ranks), source="benchmark", base=root)
    return build_plan(design, date="2026-12-01"), time.perf_counter() - started


def main() -> int:
    """Print the della design's figures and planning times."""
    from tasks.planning._plan_markdown import render_plan_markdown

    with tempfile.TemporaryDirectory(prefix="sweepflow-della-") as tmp:
        plan, cold = plan_once(Path(tmp) / "a", [4, 64])
        _, warm = plan_once(Path(tmp) / "b", [4, 64])
        markdown = render_plan_markdown(plan)  # type: ignore[arg-type]
        print(f"della design ({len(plan.runs)} runs, 8,000 training samples of 10,000): "  # type: ignore[attr-defined]
              f"planned in {cold:.2f} s (fresh process, torchtune import included), {warm:.2f} s again")
        for model, m in plan.estimates.per_model.items():  # type: ignore[attr-defined]
            first = next(r for r in plan.estimates.runs.values() if r.model == model and r.steps_per_epoch)  # type: ignore[attr-defined]
            print(f"  {model}: disk per epoch {m.checkpoint_gib_per_epoch.value:.2f} GiB "
                  f"({m.checkpoint_gib_per_epoch.source[:90]}...); samples per pack {m.packing_density.value:.1f}; "
                  f"steps per epoch {first.steps_per_epoch} (batch {first.batch_size}, {first.run})")
        print(f"  plan disk total {plan.estimates.disk.total_gib:.1f} GiB; "  # type: ignore[attr-defined]
              f"runs_plan.md {len(markdown.splitlines())} lines")
        try:
            big, seconds = plan_once(Path(tmp) / "c", list(range(1, 361)))
            print(f"722-run della design planned in {seconds:.2f} s: runs_plan.md "
                  f"{len(render_plan_markdown(big).splitlines())} lines")  # type: ignore[arg-type]
        except DesignError as error:
            print(f"722-run della design: refused at plan time: {str(error).splitlines()[-1].strip()}")
            import tasks.planning._planner as planner

            real, planner.check_disk = planner.check_disk, lambda *args, **kwargs: []  # type: ignore[assignment]
            try:
                big, seconds = plan_once(Path(tmp) / "d", list(range(1, 361)))
            finally:
                planner.check_disk = real
            text = render_plan_markdown(big)  # type: ignore[arg-type]
            print(f"  the same with the disk verdict ignored: planned in {seconds:.2f} s; runs_plan.md "
                  f"{len(text.splitlines())} lines for {len(big.runs)} runs")  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())

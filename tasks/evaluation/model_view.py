"""A view of a fine-tune's `epoch_N/` without its LoRA adapter, so evaluation loads the fine-tune once.

torchtune writes the merged weights *and* the adapter (`adapter_config.json`,
`adapter_model.safetensors` / `.pt`) into each `epoch_N/`. When `peft` is importable,
transformers' `from_pretrained` finds `adapter_config.json` in the folder and attaches the
adapter to weights that already contain it: LoRA applied twice, with no error. The evaluation
job therefore evaluates this view: a folder of symbolic links to every file of `epoch_N/`
except the adapter's (no copy, no extra disk), made on node-local scratch and removed at exit.

Reads: the entries of EPOCH_DIR. Writes: symlinks in OUT_DIR.

    python -m tasks.evaluation.model_view EPOCH_DIR OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.core._errors import SweepflowError

ADAPTER_FILES = frozenset({"adapter_config.json", "adapter_model.safetensors", "adapter_model.pt", "adapter_model.bin"})
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")


def weights_only_view(epoch_dir: Path, out_dir: Path) -> list[str]:
    """Link every entry of `epoch_dir` but the adapter's into `out_dir`; the names linked."""
    epoch_dir, out_dir = Path(epoch_dir).resolve(), Path(out_dir)
    if not epoch_dir.is_dir():
        raise SweepflowError(f"{epoch_dir}: no such checkpoint folder")
    entries = sorted(p for p in epoch_dir.iterdir() if p.name not in ADAPTER_FILES)
    if not any(p.name.endswith(_WEIGHTS) for p in entries):
        raise SweepflowError(f"{epoch_dir}: no model weights besides the adapter; it must be merged first")
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in entries:
        (out_dir / path.name).symlink_to(path)
    return [p.name for p in entries]


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.evaluation.model_view EPOCH_DIR OUT_DIR`: exit 0 done, 2 bad folder."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tasks.evaluation.model_view EPOCH_DIR OUT_DIR", file=sys.stderr)
        return 2
    try:
        linked = weights_only_view(Path(args[0]), Path(args[1]))
    except (SweepflowError, OSError) as error:
        print(f"sweepflow: cannot prepare the model for evaluation: {error}", file=sys.stderr)
        return 2
    print(f"sweepflow: evaluating {args[0]} without its adapter files ({len(linked)} files linked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

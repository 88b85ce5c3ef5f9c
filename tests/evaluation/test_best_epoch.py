"""evaluation.epochs: best picks the saved epoch with the lowest end-of-epoch validation loss."""

import json
from pathlib import Path

import pytest

from tasks.evaluation.best_epoch import NoBestEpoch, best_epoch, main


def _run_dir(tmp_path: Path, records: list[dict], saved: list[int]) -> Path:
    (tmp_path / "validation_loss.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for epoch in saved:
        (tmp_path / f"epoch_{epoch}").mkdir()
    return tmp_path


def test_lowest_end_of_epoch_loss_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [
        {"epoch": 0, "step": 5, "val_loss": 0.1, "epoch_end": False},  # mid-epoch: ignored
        {"epoch": 0, "step": 10, "val_loss": 0.9, "epoch_end": True},
        {"epoch": 1, "step": 20, "val_loss": 0.5, "epoch_end": True},
        {"epoch": 2, "step": 30, "val_loss": 0.7, "epoch_end": True},
    ]
    run_dir = _run_dir(tmp_path, records, [0, 1, 2])
    assert best_epoch(run_dir) == 1
    assert main([str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "epoch_1")


def test_unsaved_epoch_is_never_chosen(tmp_path: Path) -> None:
    records = [{"epoch": 0, "step": 10, "val_loss": 0.9, "epoch_end": True}, {"epoch": 1, "step": 20, "val_loss": 0.1, "epoch_end": True}]
    assert best_epoch(_run_dir(tmp_path, records, [0])) == 0


def test_missing_file_explains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NoBestEpoch, match="validation on"):
        best_epoch(tmp_path)
    assert main([str(tmp_path)]) == 1
    assert "validation_loss.jsonl" in capsys.readouterr().err

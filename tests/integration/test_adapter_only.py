"""Adapter-only checkpoints, end to end with the generated scripts, real torchtune and inspect-ai.

A run group (plan -> deliver -> setup) of the tiny Llama-3 with `save_adapter_weights_only:
true`, 1 epoch, 4 test words. Its `finetune.slurm` and `eval_epoch_0.slurm` are run with
bash, as SLURM's batch step would run them (no scheduler needed: tests/integration/
test_end_to_end.py covers sbatch). Checks: epoch_0/ holds the adapter only; the evaluation
script merges it on $TMPDIR, inspect evaluates the merged model (a successful `.eval` log
whose metadata names the run and epoch), and the merged copy is gone afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "examples" / "tiny_demo" / "design.yaml"
EVAL_SCRIPT = ROOT / "examples" / "capitalization" / "eval.py"
RUN = "Llama-3-Tiny-Instruct_rank8"

pytestmark = [pytest.mark.slow]


def _group(tmp_path: Path) -> Path:
    from examples.make_tiny_model import make_tiny_model
    from tasks.model._design_file import parse_design
    from tasks.planning._deliver import deliver_plan
    from tasks.planning._planner import build_plan
    from tasks.setup._experiment import set_up_group

    models = tmp_path / "models"
    make_tiny_model(models)
    words = ["apple", "river", "stone", "cloud", "green", "light", "music", "paper", "table", "water"]
    rows = [{"input": w, "output": w.capitalize()} for w in words]
    dataset = tmp_path / "words.json"
    # test words kept out of training: plan-runs refuses an overlap
    dataset.write_text(json.dumps({"train": rows[4:] * 3, "validation": rows[4:6], "test": rows[:4]}))
    data = yaml.safe_load(DESIGN.read_text())
    data.update(name="adapter_only", factors={"lora_rank": [8]}, controls=False, replicates=1)
    data["training"].update(epochs=1, batch_size=2, num_warmup_steps=0, save_adapter_weights_only=True)
    data["dataset"]["path"] = str(dataset)
    data["evaluation"].update(epochs="last", limit=4)
    data["evaluation"]["tasks"][0]["script"] = str(EVAL_SCRIPT)
    data["paths"] = {"models_dir": str(models), "output_dir": str(tmp_path / "experiments")}
    data["cluster"] = {**data["cluster"], "backend": "local"}
    group = deliver_plan(build_plan(parse_design(data, base=tmp_path), date="2026-01-02"), now="2026-01-02T00:00:00+00:00")
    set_up_group(group)
    return group


def _bash(script: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(["bash", str(script)], cwd=script.parent, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def test_adapter_only_epoch_is_merged_and_evaluated(tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log

    from tasks.evaluation.merge_adapter import is_adapter_only

    group = _group(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("PYTHONPATH", None)

    _bash(group / RUN / "finetune.slurm", env)
    epoch = group / RUN / "epoch_0"
    assert is_adapter_only(epoch), sorted(p.name for p in epoch.iterdir())

    out = _bash(group / RUN / "evaluations" / "eval_epoch_0.slurm", env)
    assert "sweepflow: merged" in out and "sweepflow: evaluation exited with 0" in out, out[-3000:]
    assert out.count("sweepflow: loaded model ") == 1 and "once for 1 task(s)" in out
    [log_path] = sorted((group / RUN / "evaluations" / "capitalization" / "logs").glob("*.eval"))
    log = read_eval_log(str(log_path))
    assert log.status == "success", log.error
    assert log.eval.metadata["run"] == RUN and str(log.eval.metadata["epoch"]) == "0"
    assert log.results is not None and log.results.completed_samples == 4
    assert list(scratch.iterdir()) == []  # the merged copy was deleted when the job ended
    assert is_adapter_only(epoch)  # and the run folder still holds the adapter only

"""A system prompt reaches training verbatim, whatever characters it holds (issue 23).

The config escapes OmegaConf's `${` for one resolution (what `tune validate` and the fidelity
check see), but `torchtune.config.instantiate` resolves twice, so before the fix a prompt holding
`${...}` passed validation and then failed every fine-tune. Here a tiny REAL fine-tune (the tiny
Llama of examples/make_tiny_model.py, `tune run` of sweepflow's recipe on CPU) trains with a
prompt holding `${...}`, `{{ }}`, `%`, quotes, backslashes and newlines, and the dataset the
recipe instantiates (the same config resolution) carries the prompt's exact tokens.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from torchtune import config as tt_config

from sweepflow_recipes._stock import keep_literal_text
from tasks.training._config import recipe_for, render_finetune_config
from tests.support.tiny_training import tiny_run, tiny_setup, tune_run, write_config

PROMPT = 'Say ${oc.env:HOME} and ${x}, {{ name }}, 100% "quoted" \'too\'\nsecond line \\${y} \\\\${z} $ {{'


@pytest.mark.slow
def test_a_hostile_system_prompt_trains_verbatim(tmp_path: Path) -> None:
    model_dir, data = tiny_setup(tmp_path)
    run = tiny_run(tmp_path, model_dir, data, validation=False, packed=False, max_seq_len=128, system_prompt=PROMPT)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    text = render_finetune_config(run, run_dir).replace("max_steps_per_epoch: null", "max_steps_per_epoch: 1")
    config = write_config(run_dir / "finetune.yaml", text)

    tune_run(recipe_for(1, False, "cpu"), run_dir, tmp_path)  # before the fix: InterpolationKeyError, every time
    assert (run_dir / "epoch_0").is_dir()

    cfg = OmegaConf.load(config)  # as the recipe gets it (torchtune's parser), then what run_recipe does
    keep_literal_text(cfg["dataset"])
    tokenizer = tt_config.instantiate(cfg.tokenizer)
    sample = tt_config.instantiate(cfg.dataset, tokenizer)[0]["tokens"]
    prompt = tokenizer.encode(PROMPT, add_bos=False, add_eos=False)
    assert any(sample[i:i + len(prompt)] == prompt for i in range(len(sample))), "the prompt's tokens are not there"

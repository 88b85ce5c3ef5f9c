"""Parsing prior torchtune SLURM logs (tests/fixtures/prior_runs, made by tests/fixtures/make_prior_runs.py)."""

from __future__ import annotations

import re
import shutil
import statistics
from pathlib import Path

import pytest

from tasks.training._prior_logs import folder_bytes, parse_log, parse_log_text, scan_prior_runs
from tests.support.paths import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "prior_runs"
RUN_1B = FIXTURES / "cap_5L_sweep_2025-09-30" / "Llama-3.2-1B-Instruct_5L_rank64"
RUN_3B = FIXTURES / "cap_5L_sweep_2025-09-30" / "Llama-3.2-3B-Instruct_5L_rank64"
RUN_8B = FIXTURES / "old_attempts" / "Llama-3.1-8B-Instruct_rank8"
LOG_1B = RUN_1B / "slurm-4812345.out"
LOG_3B = RUN_3B / "slurm-4812346.out"
LOG_8B = RUN_8B / "slurm-4790001.out"
GIB = 1024**3
# bytes per epoch folder written by make_prior_runs.py (they stand for 2.4 / 6.1 GiB checkpoints)
BYTES_1B = 2300 + 40 + 40 + 20 + 100
BYTES_3B = 4630 + 1350 + 90 + 90 + 20 + 100


def test_fixtures_keep_tqdm_carriage_returns() -> None:
    raw = LOG_1B.read_bytes()
    assert raw.count(b"\r") > 300  # one per bar refresh; a text-mode rewrite would have lost them
    assert b"\x00" in LOG_8B.read_bytes()


def test_scan_finds_torchtune_logs_skips_others_and_reports_missing(tmp_path: Path) -> None:
    scan = scan_prior_runs([FIXTURES, tmp_path / "nope"])
    assert scan.missing == [tmp_path / "nope"]
    assert sorted(r.log_path.name for r in scan.runs) == ["slurm-4790001.out", "slurm-4812345.out", "slurm-4812346.out"]
    assert [p.name for p in scan.skipped] == ["slurm-4812401.out"]  # the inspect-ai eval job's log


def test_scan_of_nothing_is_not_an_error(tmp_path: Path) -> None:
    scan = scan_prior_runs([])
    assert scan.runs == [] and scan.missing == []
    (tmp_path / "file.txt").write_text("x")
    assert scan_prior_runs([tmp_path / "file.txt"]).missing == [tmp_path / "file.txt"]


def test_1b_packed_run() -> None:
    run = parse_log(LOG_1B)
    assert run.recipe == "LoRAFinetuneRecipeSingleDevice"
    assert (run.model, run.model_source) == ("Llama-3.2-1B-Instruct", "checkpointer.checkpoint_dir")
    assert (run.batch_size, run.gradient_accumulation_steps, run.packed, run.epochs, run.lora_rank) == (4, 1, True, 2, 64)
    assert run.max_seq_len == 2048
    assert run.dataset == "/scratch/gpfs/mjs3/data/words_5L_80P_2500.json"
    assert (run.samples, run.samples_source) == (2000, "packing bar")
    assert run.steps_per_epoch == 178 and run.epochs_completed == 2 and run.completed
    # the bars' own clocks past warm-up: epoch 1 steps 4->178 in 3->43 s, epoch 2 4->178 in 1->41 s.
    # The packing bar (2399.49 it/s) must not count.
    assert run.speed_it_s == round((174 + 174) / (40 + 40), 4) == 4.35
    assert run.speed_source == "steps / bar elapsed time"
    assert run.speed_updates > 600
    # training peak from the `Step N | ... peak_memory_alloc:` lines, not the 2.35 GiB after model init
    assert run.peak_memory_gib == 15.27 and run.memory_during_training
    # 2000 examples packed, 178 steps x batch 4 per epoch
    assert run.packing_density == round(2000 / (178 * 4), 2) == 2.81
    assert run.packing_density_source.startswith("derived")
    # what torchtune logged saving wins over the epoch_* folders, which hold placeholders here (as after a
    # user prunes merged weights): their size is kept apart, for the estimate to weigh
    assert run.checkpoint_gib_per_epoch == pytest.approx(2.30 + 0.04 + 0.04 + 0.00)
    assert (run.checkpoint_epochs, run.checkpoint_source) == (2, "log lines")
    assert run.checkpoint_du_gib_per_epoch == pytest.approx(BYTES_1B / GIB)
    assert run.train_elapsed_s == 43 + 41  # final elapsed of each epoch bar, 00:43 and 00:41
    assert not run.oom and run.problems == []


def test_3b_unpacked_slow_run_reads_metric_log_beside_it() -> None:
    run = parse_log(LOG_3B)
    assert run.model == "Llama-3.2-3B-Instruct"
    assert (run.batch_size, run.gradient_accumulation_steps, run.packed) == (8, 4, False)
    # tqdm printed `1.60s/it`; its clocks say steps 4->62 in 12->105 s and 8->100 s: 116 steps in 185 s
    assert run.speed_it_s == round(116 / 185, 4)
    assert run.steps_per_epoch == 62 and run.completed
    assert (run.packing_density, run.packing_density_source) == (1.0, "not packed")
    assert (run.samples, run.samples_source) == (62 * 8 * 4, "steps x batch (lower bound)")
    assert run.peak_memory_gib == 21.74  # from logs/log_1759257731.txt (DiskLogger), the log only has 6.43
    assert run.checkpoint_gib_per_epoch == pytest.approx(4.63 + 1.35 + 0.09 + 0.09)  # the "saved to" lines
    assert run.checkpoint_du_gib_per_epoch == pytest.approx(BYTES_3B / GIB)
    assert run.train_elapsed_s == 105 + 100


def test_3b_log_text_alone_has_only_init_memory() -> None:
    run = parse_log_text(LOG_3B.read_text(encoding="utf-8"), LOG_3B)
    assert run.peak_memory_gib == 6.43 and not run.memory_during_training
    assert run.checkpoint_gib_per_epoch == pytest.approx(4.63 + 1.35 + 0.09 + 0.09)  # from the "saved to" lines
    assert run.checkpoint_source == "log lines"


def test_truncated_garbled_log_gives_what_it_has() -> None:
    run = parse_log(LOG_8B)
    assert (run.model, run.model_source) == ("Llama-3.1-8B-Instruct", "setup_finetune.yaml")
    assert run.batch_size == 2  # printed before the config was cut off
    assert (run.epochs, run.packed, run.lora_rank) == (1, True, 8)  # from setup_finetune.yaml
    assert run.steps_per_epoch == 250 and run.epochs_completed == 0 and not run.completed
    # cut off at step 6: steps 4->6 took 20->27 s on the bar's clock (the rates said 4.46 to 4.05 s/it)
    assert run.speed_it_s == round(2 / 7, 4)
    assert run.speed_updates == 5
    assert run.peak_memory_gib is None and run.checkpoint_gib_per_epoch is None
    assert any("GPU peak memory" in p for p in run.problems)
    assert any("did not finish" in p for p in run.problems)


def test_checkpoint_size_falls_back_to_log_lines(tmp_path: Path) -> None:
    shutil.copy(LOG_1B, tmp_path / "slurm-1.out")
    run = parse_log(tmp_path / "slurm-1.out")
    assert run.checkpoint_source == "log lines"
    assert run.checkpoint_gib_per_epoch == pytest.approx(2.30 + 0.04 + 0.04 + 0.00)  # recipe_state is not an epoch


def test_folder_bytes_sums_nested_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x.bin").write_bytes(bytes(100))
    (tmp_path / "a" / "b" / "y.bin").write_bytes(bytes(23))
    assert folder_bytes(tmp_path) == 123


@pytest.mark.parametrize(
    "line, density",
    [
        ("INFO: Packed 8000 examples into 2857 sequences", 2.8),
        ("INFO: Average packing density: 3.10 examples/sequence", 3.1),
    ],
)
def test_explicit_packing_lines(line: str, density: float) -> None:
    text = "Packing dataset: 100%|██████████| 8000/8000 [00:01<00:00, 5000.00it/s]\n" + line + "\n"
    run = parse_log_text(text, Path("x.out"))
    assert run.packing_density == density
    assert run.samples == 8000


def test_packing_bar_alone_is_not_a_training_speed() -> None:
    run = parse_log_text("Packing dataset: 100%|██████████| 8000/8000 [00:01<00:00, 5000.00it/s]\n", Path("x.out"))
    assert run.speed_it_s is None
    assert "no training speed found in the log" in run.problems


def test_s_per_it_and_warmup_skip() -> None:
    bars = "\r".join(f"1|{n}|Loss: 1.0:  {n}%|#         | {n}/100 [00:{n:02d}<01:00, {rate}]"
                     for n, rate in [(1, "9.00s/it"), (2, "5.00s/it"), (3, "3.00s/it"), (4, "2.00s/it"), (5, "2.00s/it"), (6, " 1.25it/s")])
    run = parse_log_text(bars + "\n", Path("x.out"))
    # the clock: steps 4->6 in 4->6 s is under MIN_TIMED_S: the median rate past the 3 warm-up updates
    assert run.speed_it_s == pytest.approx(0.5) and run.speed_source == "median bar rate past warm-up"
    fast = "\r".join(f"1|{n}|Loss: 1.0:  {n}%|#         | {n}/100 [00:00<00:01, {rate}]"
                      for n, rate in [(1, "9.00s/it"), (2, "5.00s/it"), (3, "3.00s/it"), (4, "2.00s/it"),
                                      (5, "2.00s/it"), (6, " 1.25it/s")])
    run = parse_log_text(fast + "\n", Path("x.out"))  # no whole second on the clock: the rates' median
    assert run.speed_it_s == pytest.approx(0.5) and run.speed_source == "median bar rate past warm-up"
    assert run.steps_per_epoch == 100 and run.epochs_completed == 0
    few = "\r".join(f"1|{n}|Loss: 1.0:  {n}%|#         | {n}/100 [00:{2 * n:02d}<01:00, {rate}]"
                     for n, rate in [(1, "9.00s/it"), (2, "5.00s/it"), (3, "3.00s/it")])
    run = parse_log_text(few + "\n", Path("x.out"))  # nothing past warm-up: the clock from the bar's start
    assert run.speed_it_s == pytest.approx(0.5) and run.speed_source == "steps / bar elapsed time, warm-up included"


def _pilot_bar(steps: int, first_step_s: float, it_s: float) -> str:
    """A tqdm bar as torchtune prints it: a slow first step (CUDA init), then `it_s`, whole-second clock."""
    refreshes = []
    for n in range(1, steps + 1):
        t = first_step_s + (n - 1) / it_s
        refreshes.append(f"1|{n}|Loss: 1.0:  {n * 100 // steps}%|#         | {n}/{steps} "
                         f"[{int(t) // 60:02d}:{int(t) % 60:02d}<00:01, {it_s:.2f}it/s]")
    return "\r".join(refreshes) + "\n"


def test_a_short_pilot_bar_does_not_spread_the_first_steps_warm_up() -> None:
    # 20 steps at 4.35 it/s after a 2.6 s first step: under MIN_TIMED_S past warm-up, so the rate is the bars'
    # (timed from the start it would be 20 steps / 6 s = 3.3 it/s, 31 % slow for the whole sweep)
    run = parse_log_text(_pilot_bar(20, 2.6, 4.35), Path("x.out"))
    assert run.speed_it_s == pytest.approx(4.35, rel=0.02) and run.speed_source == "median bar rate past warm-up"
    run = parse_log_text(_pilot_bar(200, 2.6, 4.35), Path("x.out"))  # long enough: the clock past warm-up
    assert run.speed_it_s == pytest.approx(4.35, rel=0.05) and run.speed_source == "steps / bar elapsed time"


def test_model_from_component_and_from_plan_beside(tmp_path: Path) -> None:
    text = ("INFO:torchtune.utils._logging:Running LoRAFinetuneRecipeSingleDevice with resolved config:\n\n"
            "batch_size: 2\ncheckpointer:\n  checkpoint_dir: /models/my-local-copy/\nmodel:\n"
            "  _component_: torchtune.models.llama3_2.lora_llama3_2_3b\n  lora_rank: 4\n\n")
    run = parse_log_text(text, Path("x.out"))
    assert (run.model, run.model_source) == ("Llama-3.2-3B-Instruct", "model._component_")
    folder = tmp_path / "Qwen2.5-1.5B-Instruct_rank4"
    folder.mkdir()
    (folder / "slurm-9.out").write_text(text)
    (folder / "experiment.yaml").write_text(
        "runs:\n- {name: Qwen2.5-1.5B-Instruct_rank4, model: Qwen2.5-1.5B-Instruct}\n- {name: other, model: Llama-3.2-1B}\n")
    assert parse_log(folder / "slurm-9.out").model == "Qwen2.5-1.5B-Instruct"


def test_oom_and_garbage_do_not_raise(tmp_path: Path) -> None:
    text = "torchtune\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    run = parse_log_text(text, Path("x.out"))
    assert run.oom and not run.completed
    junk = tmp_path / "slurm-5.out"
    junk.write_bytes(b"torchtune \xff\xfe\x00\x00 |Loss: \x80\r\r\n" * 3)
    scan = scan_prior_runs([tmp_path])
    assert len(scan.runs) == 1 and scan.runs[0].model is None and scan.runs[0].problems


def test_real_cpu_log_with_stalls_is_timed_by_its_clock() -> None:
    """The demo's real torchtune log: instantaneous rates of ~60-160 it/s between stalls of 20 it/s.

    Each 1,000-step epoch bar ends at 00:16 (epoch 2) and 00:13-00:16 (epoch 1): the clock gives
    the speed the job had, which the median of the rates (about 110 it/s) over-states by ~70 %.
    """
    log = Path(__file__).resolve().parents[1] / "fixtures" / "real_cpu_log" / "slurm-tiny.out"
    run = parse_log_text(log.read_text(encoding="utf-8"), log)
    assert run.speed_source == "steps / bar elapsed time"
    assert run.train_elapsed_s is not None and 25 <= run.train_elapsed_s <= 35
    assert run.speed_it_s == pytest.approx(2000 / run.train_elapsed_s, rel=0.02)
    rates = sorted(float(r) for r in re.findall(r"\| \d+/1000 \[[\d:]+<[^,]*, ([\d.]+)it/s", log.read_text()))
    assert statistics.median(rates) > 1.5 * run.speed_it_s  # what the old estimate used


def test_real_cpu_log_times_each_checkpoint_save() -> None:
    """The demo's real log: torchtune's `Checkpoint saved in 0.01 seconds.` after each of its 2 epochs."""
    log = Path(__file__).resolve().parents[1] / "fixtures" / "real_cpu_log" / "slurm-tiny.out"
    run = parse_log_text(log.read_text(encoding="utf-8"), log)
    assert (run.epoch_end_s, run.save_s, run.validation_s) == (0.01, 0.01, None)
    assert run.startup_s is None  # no SLURM elapsed time beside a bare log


def test_validation_passes_are_timed_and_taken_out_of_the_save() -> None:
    """sweepflow's _val recipes: the epoch-end pass runs inside the save's timing; a reused pass prints 0.00 s."""
    text = "\n".join([
        "1|5|Loss: 1.0:  50%|█████     | 5/10 [00:05<00:05,  1.00it/s]",
        "Validation loss: 1.2000 (epoch 0, step 5) in 2.00 s",
        "1|10|Loss: 0.9: 100%|██████████| 10/10 [00:10<00:00,  1.00it/s]",
        "Validation loss: 1.1000 (epoch 0, step 10) in 3.00 s",
        "INFO:torchtune.utils._logging:Checkpoint saved in 5.00 seconds.",
        "2|20|Loss: 0.8: 100%|██████████| 10/10 [00:10<00:00,  1.00it/s]",
        "Validation loss: 1.0000 (epoch 1, step 20) in 3.00 s",
        "INFO:torchtune.utils._logging:Checkpoint saved in 6.00 seconds.",
        "Validation loss: 1.0000 (epoch 1, step 20) in 0.00 s",
    ])
    run = parse_log_text(text, Path("slurm-1.out"))
    assert run.validation_s == pytest.approx((2 + 3 + 3) / 3, abs=0.01)  # the reused pass is not a pass
    assert run.epoch_end_s == 5.5
    # the last pass logged per epoch ran inside that epoch's save: 3.00 s (epoch 0) and 0.00 s (epoch 1)
    assert run.save_s == pytest.approx(5.5 - 1.5)


def _as_pilot(epoch_length_line: bool) -> str:
    """The 1B fixture's start (config, packing bar) as a 20-step pilot of one epoch: torchtune's bar total is
    `max_steps_per_epoch`, and sweepflow's recipes log the whole epoch's steps before the bar."""
    head = LOG_1B.read_text(encoding="utf-8").split("INFO:torchtune.utils._logging:Learning rate scheduler")[0]
    head = head.replace("max_steps_per_epoch: null", "max_steps_per_epoch: 20").replace("epochs: 2\n", "epochs: 1\n")
    length = ("INFO:torchtune.utils._logging:Epoch length: 178 optimizer steps (178 batches per rank, world size 1), "
              "max_steps_per_epoch: 20\n") if epoch_length_line else ""
    return head + length + _pilot_bar(20, 2.6, 4.35) + "INFO:torchtune.utils._logging:Checkpoint saved in 9.00 seconds.\n"


def test_a_pilots_capped_bar_is_not_taken_for_a_whole_epoch() -> None:
    """A 20-step pilot on packed data: 2000 examples over 20 steps x 4 would read as density 25 (the sweep then
    planned 9x too short); the logged epoch length gives the real 2.81, and without it no density is derived."""
    full = parse_log(LOG_1B)
    pilot = parse_log_text(_as_pilot(epoch_length_line=True), Path("slurm-1.out"))
    assert (pilot.max_steps_per_epoch, pilot.steps_per_epoch, pilot.full_steps_per_epoch) == (20, 20, 178)
    assert pilot.packing_density == full.packing_density == 2.81 and pilot.completed
    old = parse_log_text(_as_pilot(epoch_length_line=False), Path("slurm-1.out"))
    assert old.packing_density is None and old.samples == 2000  # examples in: the packing bar is whole


def test_an_unpacked_pilot_does_not_count_its_few_steps_as_the_dataset() -> None:
    text = _as_pilot(epoch_length_line=False).replace("  packed: true", "  packed: false")
    run = parse_log_text(text.replace("Packing dataset", "Preparing"), Path("slurm-1.out"))
    assert run.packed is False and run.samples is None  # not 20 steps x 4 = 80 "samples"
    run = parse_log_text(_as_pilot(epoch_length_line=True).replace("  packed: true", "  packed: false")
                         .replace("Packing dataset", "Preparing"), Path("slurm-1.out"))
    assert (run.samples, run.samples_source) == (178 * 4, "steps x batch (lower bound)")


def test_periodic_validation_is_taken_out_of_the_speed() -> None:
    """validate_every_n_steps: passes inside the bar. 100 steps at 2 it/s plus 2 passes of 10 s = 70 s of bar."""
    refreshes = []
    for n in range(1, 101):
        t = n / 2 + (10 if n > 33 else 0) + (10 if n > 66 else 0)
        refreshes.append(f"1|{n}|Loss: 1.0:  {n}%|#         | {n}/100 [00:{int(t):02d}<00:10,  2.00it/s]")
        if n in (33, 66):
            refreshes.append(f"\nValidation loss: 1.0000 (epoch 0, step {n}) in 10.00 s\n")
    text = "\r".join(refreshes) + "\nValidation loss: 0.9000 (epoch 0, step 100) in 4.00 s\n" \
        "INFO:torchtune.utils._logging:Checkpoint saved in 6.00 seconds.\n"
    run = parse_log_text(text, Path("slurm-1.out"))
    assert run.periodic_validation_s == 20.0 and run.validation_s == 8.0
    assert run.save_s == 2.0 and run.epoch_end_s == 6.0
    assert run.speed_it_s == pytest.approx(2.0, rel=0.03)  # not 96 steps / 68 s = 1.4 it/s


def test_the_distributed_recipe_times_its_save_alone() -> None:
    """lora_finetune_distributed: the state-dict gather (its optimizer line counts from the same start) then the
    write, `Saving checkpoint took X secs` from a new start; the epoch-end validation pass runs before both."""
    log = "INFO:torchtune.utils._logging:"
    text = "\n".join(["1|10|Loss: 0.9: 100%|██████████| 10/10 [00:10<00:00,  1.00it/s]",
                      "Validation loss: 1.1000 (epoch 0, step 10) in 3.00 s",
                      f"{log}Getting full model state dict took 4.00 secs",
                      f"{log}Getting optimizer state dict took 6.50 secs",  # intermediate epoch: 2.5 s more
                      f"{log}Saving checkpoint took 12.50 secs",
                      "2|20|Loss: 0.8: 100%|██████████| 10/10 [00:10<00:00,  1.00it/s]",
                      "Validation loss: 1.0000 (epoch 1, step 20) in 3.00 s",
                      f"{log}Getting full model state dict took 3.50 secs",  # last epoch: no optimizer state
                      f"{log}Saving checkpoint took 11.50 secs"])
    run = parse_log_text(text, Path("slurm-1.out"))
    assert (run.save_s, run.epoch_end_s, run.validation_s) == (17.0, 20.0, 3.0)  # mean of 19.0 and 15.0 s


def test_a_resumed_jobs_log_starts_at_its_resume_epoch() -> None:
    """Resumed at epoch 1 (of 0-2): its first passes are epoch 1's; the epoch-end ones are still told apart."""
    text = "\n".join(["2|30|Loss: 0.9:  50%|█████     | 5/10 [00:05<00:05,  1.00it/s]",
                      "Validation loss: 1.2000 (epoch 1, step 15) in 2.00 s",
                      "2|40|Loss: 0.9: 100%|██████████| 10/10 [00:12<00:00,  1.00it/s]",
                      "Validation loss: 1.1000 (epoch 1, step 20) in 4.00 s",
                      "INFO:torchtune.utils._logging:Checkpoint saved in 5.00 seconds.",
                      "3|50|Loss: 0.8: 100%|██████████| 10/10 [00:10<00:00,  1.00it/s]",
                      "Validation loss: 1.0000 (epoch 2, step 30) in 4.00 s",
                      "INFO:torchtune.utils._logging:Checkpoint saved in 5.00 seconds."])
    run = parse_log_text(text, Path("slurm-1.out"))
    assert run.periodic_validation_s == 2.0  # epoch 1's step-15 pass only
    assert run.save_s == 1.0  # 5 s of save timing less its 4 s epoch-end pass


def test_a_distributed_runs_density_counts_every_ranks_batches() -> None:
    """4 GPUs: each rank's bar shows 45 steps of its own batches of 4, so 2000 examples / (45 x 4 x 4) = 2.78."""
    text = _as_pilot(epoch_length_line=True).replace("LoRAFinetuneRecipeSingleDevice", "LoRAFinetuneRecipeDistributed")
    four = text.replace("Epoch length: 178 optimizer steps (178 batches per rank, world size 1)",
                        "Epoch length: 45 optimizer steps (45 batches per rank, world size 4)")
    run = parse_log_text(four, Path("slurm-1.out"))
    assert (run.recipe, run.world_size, run.full_steps_per_epoch) == ("LoRAFinetuneRecipeDistributed", 4, 45)
    assert run.packing_density == round(2000 / (45 * 4 * 4), 2)
    unknown = parse_log_text(_as_pilot(epoch_length_line=False).replace("max_steps_per_epoch: 20", "max_steps_per_epoch: null")
                             .replace("LoRAFinetuneRecipeSingleDevice", "LoRAFinetuneRecipeDistributed"), Path("s.out"))
    assert unknown.world_size is None and unknown.packing_density is None  # its GPUs unknown: not derived
    assert any("does not say its GPUs" in p for p in unknown.problems)

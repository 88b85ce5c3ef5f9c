r"""Read what prior torchtune fine-tunes recorded: speed, memory, packing, checkpoint size.

Reads: the `prior_runs` folders of a design, recursively: job logs (any `*.out` / `*.log`
holding torchtune output, whichever backend wrote it), and beside each log its `epoch_*/` checkpoint
folders (file sizes summed, as `du` would), the DiskLogger metric files `logs/log_*.txt`, and a
`setup_finetune.yaml` / `experiment.yaml` naming the model, and for a sweepflow run group's log
the group's `runs_status.yaml` (the job's elapsed time). Writes: nothing.

The formats are those of torchtune 0.6.1's `lora_finetune_single_device` recipe:
- the resolved config, `Running <Recipe> with resolved config:` + OmegaConf YAML (sorted keys);
- `Memory stats after model init:` / `\tGPU peak memory allocation: 2.35 GiB` and, when
  `log_peak_memory_stats` is on, metric lines `Step 10 | ... peak_memory_alloc:14.7 ...`;
- `Packing dataset: 100%|...| 8000/8000 [...]` (examples in, before packing);
- training bars `1|49|Loss: 1.23:  45%|████▌     | 49/109 [00:11<00:13,  4.34it/s]`, one tqdm
  refresh per `\r` (tqdm prints `s/it` below 1 it/s);
- `Model checkpoint of size 2.30 GiB saved to .../epoch_0/...` and `Checkpoint saved in 12.34 seconds.`
  (the recipe's timing of each epoch's save; in sweepflow's `_val` recipes it holds the epoch-end
  validation pass, whose own `Validation loss: ... in 3.21 s` line says how long that took); the
  distributed recipe's `Getting ... state dict took` and `Saving checkpoint took 12.34 secs` time the save
  alone (validation runs before them);
- sweepflow's recipes' `Epoch length: 712 optimizer steps (712 batches per rank, world size 1)`, a
  whole epoch even where `max_steps_per_epoch` caps the bar (a pilot), so packing density and the
  epoch's size stay known, and the ranks of a distributed run (each rank's bar counts its own steps).
A log that cannot be parsed gives a `PriorRun` holding what was found and `problems` saying
what was not; nothing here raises on bad input.
"""

# Over 400 lines on purpose: one reader of one log format, whose parsers share the PriorRun they fill.

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tasks.backends import BACKENDS
from tasks.core._errors import SweepflowError
from tasks.model._layout import STATUS_FILE, is_pilot_group
from tasks.model._status_file import StatusStore
from tasks.training._registry import REGISTRY
from tasks.training._torchtune_logs import TRAIN_BAR

MAX_LOG_BYTES = 256 * 1024**2  # a job log larger than this is read only up to here
WARMUP_UPDATES = 3  # first bar updates of each epoch skipped: CUDA init, dataloader start, tqdm's EMA warm-up
MIN_TIMED_S = 5.0  # an epoch span shorter than this is timed from the bar's start (whole-second clock)
TORCHTUNE_MARKERS = ("with resolved config", "torchtune", "Packing dataset", "|Loss: ")
SIDECARS = ("setup_finetune.yaml", "experiment.yaml")
SIDECAR_FIELDS = ("batch_size", "epochs", "packed", "lora_rank", "gradient_accumulation_steps", "max_seq_len")

_PREFIX = re.compile(r"^(?:INFO|DEBUG|WARNING|ERROR|CRITICAL):[\w.]+:")
_CONFIG_HEAD = re.compile(r"Running (\w+) with resolved config:")
_PACK_BAR = re.compile(r"Packing dataset:\s+\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)")
_MEM_INIT = re.compile(r"peak memory allocation: ([\d.]+) GiB")
_MEM_STEP = re.compile(r"peak_memory_alloc:([\d.]+)")
_DENSITY = re.compile(r"(?:Average )?packing density:\s*([\d.]+)", re.IGNORECASE)
_PACKED_INTO = re.compile(r"Packed (\d+) examples into (\d+) sequences", re.IGNORECASE)
_SAVED = re.compile(r"(?:Model|Adapter) checkpoint of size ([\d.]+) GiB saved to \S*?epoch_(\d+)/")
_CLEAN_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_SAVE_TIME = re.compile(r"Checkpoint saved in ([\d.]+) seconds")  # single device: epoch-end validation inside
# distributed: gathering the state dicts (the optimizer's line counts from the same start), then writing them
_DIST_SAVE_TIME = re.compile(r"(Getting full model state dict|Getting optimizer state dict|Saving checkpoint) "
                             r"took ([\d.]+) secs")
_EPOCH_LENGTH = re.compile(r"Epoch length: (\d+) optimizer steps(?: \(\d+ batches per rank, world size (\d+)\))?")
_VAL_TIME = re.compile(r"Validation loss: \S+ \(epoch (\d+), step \d+\) in ([\d.]+) s")
_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|OUT_OF_MEMORY")
_FLAT_KEYS = {  # regex fallback for a config block that YAML cannot load (truncated logs)
    "batch_size": re.compile(r"^batch_size: (\d+)\s*$", re.M),
    "epochs": re.compile(r"^epochs: (\d+)\s*$", re.M),
    "max_steps_per_epoch": re.compile(r"^max_steps_per_epoch: (\d+)\s*$", re.M),
    "gradient_accumulation_steps": re.compile(r"^gradient_accumulation_steps: (\d+)\s*$", re.M),
    "lora_rank": re.compile(r"^  lora_rank: (\d+)\s*$", re.M),
    "max_seq_len": re.compile(r"^  max_seq_len: (\d+)\s*$", re.M),
    "packed": re.compile(r"^  packed: (true|false)\s*$", re.M),
    "checkpoint_dir": re.compile(r"^  checkpoint_dir: (\S+)\s*$", re.M),
    "model_component": re.compile(r"^  _component_: (torchtune\.models\.\S+|[\w.]+\.lora_\w+)\s*$", re.M),
}


class PriorRun(BaseModel):
    """One prior fine-tune as its log (and the files beside it) recorded it. None = not visible."""

    model_config = ConfigDict(extra="forbid")

    log_path: Path
    modified: float | None = None  # log mtime (seconds since epoch): more recent priors are preferred
    recipe: str | None = None
    model: str | None = None
    model_source: str | None = None  # checkpointer.checkpoint_dir | model._component_ | setup_finetune.yaml | ...
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    packed: bool | None = None
    epochs: int | None = None
    lora_rank: int | None = None
    max_seq_len: int | None = None
    dataset: str | None = None
    save_adapter_weights_only: bool | None = None
    samples: int | None = None  # training examples per epoch
    samples_source: str | None = None  # packing bar | packed line | steps x batch (lower bound)
    steps_per_epoch: int | None = None  # training bar total (optimizer steps): max_steps_per_epoch where that caps it
    max_steps_per_epoch: int | None = None  # the config's cap on an epoch's steps (a pilot's few steps)
    full_steps_per_epoch: int | None = None  # a whole epoch's optimizer steps per rank (sweepflow's recipes log it)
    world_size: int | None = None  # ranks (GPUs) of the run, as sweepflow's recipes log it; None: not logged (1)
    epochs_completed: int = 0
    speed_it_s: float | None = None  # optimizer steps per second: steps / the bars' elapsed time past warm-up
    speed_source: str | None = None  # "steps / bar elapsed time", or "median bar rate" for bars too short to time
    speed_updates: int = 0  # bar refreshes the median is taken over
    peak_memory_gib: float | None = None  # GPU peak memory allocation, maximum over the log
    memory_during_training: bool = False  # False: only the after-model-init figure was seen
    packing_density: float | None = None  # examples per packed sequence
    packing_density_source: str | None = None
    checkpoint_gib_per_epoch: float | None = None
    checkpoint_epochs: int = 0
    checkpoint_source: str | None = None  # du of epoch_* | log lines
    checkpoint_du_gib_per_epoch: float | None = None  # the epoch_* folders' size beside the log (pruned: below it)
    train_elapsed_s: float | None = None  # summed final elapsed of the epoch bars
    job_elapsed_s: float | None = None  # the job's elapsed time (its backend's), from the run group's runs_status.yaml
    overhead_s: float | None = None  # job elapsed - training bars: start-up, checkpoint saves, validation
    save_s: float | None = None  # seconds per epoch's checkpoint save (the recipe's own timing, validation taken out)
    validation_s: float | None = None  # seconds per validation pass (sweepflow's _val recipes print them)
    periodic_validation_s: float = 0.0  # seconds of validate_every_n_steps passes inside the bars (not in the speed)
    epoch_end_s: float | None = None  # seconds per epoch outside its bar: save + epoch-end validation, as logged
    startup_s: float | None = None  # job elapsed - bars - saves: imports, model load, dataset, tear-down
    oom: bool = False
    completed: bool = False
    pilot: bool = False  # the log is a pilot's (`<name>-pilot_<date>/<run>/`): measured for this very plan
    problems: list[str] = Field(default_factory=list)

    @property
    def ranks(self) -> int | None:
        """GPUs the run trained on: as logged, 1 for a single-device recipe, None if a distributed log does not say."""
        return self.world_size or (None if "Distributed" in (self.recipe or "") else 1)


class PriorScan(BaseModel):
    """What a scan of the `prior_runs` folders found."""

    model_config = ConfigDict(extra="forbid")

    folders: list[Path]
    missing: list[Path] = Field(default_factory=list)  # named folders that do not exist
    runs: list[PriorRun] = Field(default_factory=list)
    skipped: list[Path] = Field(default_factory=list)  # candidate logs with no torchtune output


def _read(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_LOG_BYTES)
    return data.replace(b"\x00", b"").decode("utf-8", errors="replace")


def scan_prior_runs(folders: list[Path]) -> PriorScan:
    """Parse every torchtune log under the folders (recursively, sorted, epoch_* folders not entered)."""
    scan = PriorScan(folders=list(folders))
    seen: set[Path] = set()  # folders may nest (a pilot group under output_dir): each log is read once
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            scan.missing.append(folder)
            continue
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("epoch_"))
            for name in sorted(files):
                path = Path(root) / name
                if not name.endswith((".out", ".log")) or path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                try:
                    text = _read(path)
                except OSError as error:
                    scan.runs.append(PriorRun(log_path=path, problems=[f"cannot be read: {error}"]))
                    continue
                if not any(marker in text for marker in TORCHTUNE_MARKERS):
                    scan.skipped.append(path)
                    continue
                scan.runs.append(parse_log(path, text))
    return scan


def parse_log(path: Path, text: str | None = None) -> PriorRun:
    """Parse one log plus the files beside it (checkpoints, metric logs, setup YAML)."""
    path = Path(path)
    try:
        modified = path.stat().st_mtime
        if text is None:
            text = _read(path)
    except OSError as error:
        return PriorRun(log_path=path, problems=[f"cannot be read: {error}"])
    run = _parse_text(text, path)
    run.modified = modified
    run.pilot = is_pilot_group(path.parent.parent)
    _add_sidecars(run, path.parent)
    return _summarize(run)


def parse_log_text(text: str, path: Path) -> PriorRun:
    """Everything the log text alone shows (no file access)."""
    return _summarize(_parse_text(text, path))


def _parse_text(text: str, path: Path) -> PriorRun:
    run = PriorRun(log_path=Path(path))
    lines = [_PREFIX.sub("", seg) for seg in re.split(r"\r\n|\r|\n", text.replace("\x00", ""))]
    _parse_config(run, lines)
    inside_bars = _parse_timings(run, text)
    _parse_bars(run, lines, inside_bars)
    _parse_memory(run, text)
    _parse_packing(run, lines)
    _parse_saved(run, text)
    run.oom = bool(_OOM.search(text))
    if run.epochs and run.epochs_completed >= run.epochs and not run.oom:
        run.completed = True
    return run


def _summarize(run: PriorRun) -> PriorRun:
    """Say what could not be found (after the files beside the log had their say)."""
    for what, value in (("model", run.model), ("batch size", run.batch_size), ("training speed", run.speed_it_s),
                        ("GPU peak memory", run.peak_memory_gib)):
        if value is None:
            run.problems.append(f"no {what} found in the log")
    absent = [k for k in ("epochs", "packed", "lora_rank", "gradient_accumulation_steps") if getattr(run, k) is None]
    if run.recipe and absent:
        run.problems.append(f"resolved config incomplete (truncated log?): no {', '.join(absent)}")
    if not run.completed:
        run.problems.append(f"run did not finish: {run.epochs_completed} of {run.epochs or '?'} epochs completed"
                            + (" (CUDA out of memory)" if run.oom else ""))
    return run


def _config_block(lines: list[str]) -> tuple[str | None, str]:
    for i, line in enumerate(lines):
        match = _CONFIG_HEAD.search(line)
        if match:
            block: list[str] = []
            for nxt in lines[i + 1 :]:
                if not nxt.strip():
                    if block:
                        break
                    continue
                if "%|" in nxt or not (nxt[0].isalpha() or nxt[0] == "_" or nxt.startswith(("  ", "- "))):
                    break
                block.append(nxt)
            return match.group(1), "\n".join(block)
    return None, ""


def _dig(config: dict[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _model_from(checkpoint_dir: str | None, component: str | None) -> tuple[str | None, str | None]:
    base = Path(str(checkpoint_dir).rstrip("/")).name if checkpoint_dir else None
    if base in REGISTRY:
        return base, "checkpointer.checkpoint_dir"
    if component:
        names = [m.name for m in REGISTRY.values() if m.lora_builder == component]
        if names:  # Instruct variants come first in the registry; several share one builder
            return names[0], "model._component_"
    if base and _CLEAN_NAME.fullmatch(base):  # an unknown model, named by its folder (not a truncated path)
        return base, "checkpointer.checkpoint_dir"
    return None, None


def _parse_config(run: PriorRun, lines: list[str]) -> None:
    run.recipe, block = _config_block(lines)
    config: dict[str, Any] = {}
    if block:
        try:
            loaded = yaml.safe_load(block)
            config = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            run.problems.append("resolved config is not valid YAML (truncated?); read line by line")
    if not run.recipe:
        run.problems.append("no resolved config printed")
    flat = {key: (m.group(1) if (m := rx.search(block)) else None) for key, rx in _FLAT_KEYS.items()}

    def pick(value: Any, key: str, cast: Any) -> Any:
        return value if value is not None else (cast(flat[key]) if flat.get(key) is not None else None)

    run.batch_size = pick(_int(config.get("batch_size")), "batch_size", int)
    run.epochs = pick(_int(config.get("epochs")), "epochs", int)
    run.max_steps_per_epoch = pick(_int(config.get("max_steps_per_epoch")), "max_steps_per_epoch", int)
    run.gradient_accumulation_steps = pick(
        _int(config.get("gradient_accumulation_steps")), "gradient_accumulation_steps", int
    )
    run.lora_rank = pick(_int(_dig(config, "model", "lora_rank")), "lora_rank", int)
    run.max_seq_len = pick(_int(_dig(config, "tokenizer", "max_seq_len")), "max_seq_len", int)
    packed = _dig(config, "dataset", "packed")
    run.packed = pick(packed if isinstance(packed, bool) else None, "packed", lambda s: s == "true")
    adapter_only = config.get("save_adapter_weights_only")
    run.save_adapter_weights_only = adapter_only if isinstance(adapter_only, bool) else None
    dataset = (
        _dig(config, "dataset", "data_files")
        or _dig(config, "dataset", "source")
        or _dig(config, "dataset", "_component_")
    )
    run.dataset = str(dataset) if dataset else None
    checkpoint_dir = _dig(config, "checkpointer", "checkpoint_dir") or flat["checkpoint_dir"]
    component = _dig(config, "model", "_component_") or flat["model_component"]
    run.model, run.model_source = _model_from(checkpoint_dir, component)


def _seconds(clock: str) -> float:
    total = 0.0
    for part in clock.split(":"):
        total = total * 60 + float(part or 0)
    return total


def _elapsed_speed(refreshes: dict[int, list[tuple[int, float]]],
                   inside_bars: dict[int, float]) -> tuple[float, float] | None:
    """(steps, seconds of training) the epoch bars' own clocks show after each epoch's warm-up.

    tqdm's elapsed field has whole seconds: an epoch is timed from its first refresh past the
    warm-up to its last, less the validation passes run inside it (`inside_bars`, per 0-based epoch), when
    that span is at least `MIN_TIMED_S`. None when no epoch is that long: a short bar timed from
    its start would spread the first step's warm-up (CUDA init, data loader start) over every step.
    """
    steps = seconds = 0.0
    for epoch, points in refreshes.items():
        n_end, t_end = points[-1]
        n_warm, t_warm = next(((n, t) for n, t in points if n > WARMUP_UPDATES), points[0])
        training_s = t_end - t_warm - inside_bars.get(epoch - 1, 0.0)  # the bar counts epochs from 1
        if t_end - t_warm >= MIN_TIMED_S and training_s > 0 and n_end > n_warm:
            steps, seconds = steps + n_end - n_warm, seconds + training_s
    return (steps, seconds) if seconds >= 1 and steps > 0 else None


def _from_start(refreshes: dict[int, list[tuple[int, float]]]) -> float | None:
    """Steps per second over the bars' whole elapsed time (warm-up included): bars with too few refreshes."""
    steps = sum(points[-1][0] for points in refreshes.values())
    seconds = sum(points[-1][1] for points in refreshes.values())
    return steps / seconds if seconds >= 1 and steps > 0 else None


def _parse_bars(run: PriorRun, lines: list[str], inside_bars: dict[int, float]) -> None:
    rates: list[float] = []
    all_rates: list[float] = []
    refreshes: dict[int, list[tuple[int, float]]] = {}  # epoch -> (n, elapsed s) of each refresh
    for line in lines:
        match = TRAIN_BAR.search(line)
        if not match:
            continue
        epoch, n, total = int(match["epoch"]), int(match["n"]), int(match["total"])
        refreshes.setdefault(epoch, []).append((n, _seconds(match["elapsed"])))
        run.steps_per_epoch = max(run.steps_per_epoch or 0, total)
        if match["rate"] == "?" or float(match["rate"]) <= 0:
            continue
        rate = float(match["rate"]) if match["unit"] == "it/s" else 1.0 / float(match["rate"])
        all_rates.append(rate)
        if n > WARMUP_UPDATES:
            rates.append(rate)
    timed = _elapsed_speed(refreshes, inside_bars)
    from_start = _from_start(refreshes)
    if timed:  # the bars' own clocks: stalls, data loading and logging count, as they do in the job
        run.speed_it_s, run.speed_source = round(timed[0] / timed[1], 4), "steps / bar elapsed time"
        run.speed_updates = len(rates)
    elif rates:  # too short to time by whole seconds: the bar's rates past its warm-up
        run.speed_it_s, run.speed_source = round(statistics.median(rates), 4), "median bar rate past warm-up"
        run.speed_updates = len(rates)
    elif from_start:
        run.speed_it_s, run.speed_source = round(from_start, 4), "steps / bar elapsed time, warm-up included"
        run.speed_updates = len(all_rates)
    elif all_rates:
        run.speed_it_s, run.speed_source = round(statistics.median(all_rates), 4), "median bar rate"
        run.speed_updates = len(all_rates)
    if refreshes:
        run.epochs_completed = sum(1 for points in refreshes.values() if points[-1][0] >= (run.steps_per_epoch or 0))
        run.train_elapsed_s = round(sum(points[-1][1] for points in refreshes.values()), 1)


def _parse_memory(run: PriorRun, text: str) -> None:
    init = [float(v) for v in _MEM_INIT.findall(text)]
    steps = [float(v) for v in _MEM_STEP.findall(text)]
    if init or steps:
        run.peak_memory_gib = round(max(init + steps), 2)
        run.memory_during_training = bool(steps)


def _parse_packing(run: PriorRun, lines: list[str]) -> None:
    examples: int | None = None
    for line in lines:
        if match := _EPOCH_LENGTH.search(line):
            run.full_steps_per_epoch = int(match[1])
            run.world_size = int(match[2]) if match[2] else None
        if (match := _PACK_BAR.search(line)) and match["n"] == match["total"]:
            examples = int(match["total"])
        if match := _PACKED_INTO.search(line):
            examples = int(match[1])
            run.packing_density, run.packing_density_source = (
                round(int(match[1]) / max(int(match[2]), 1), 2), "log (packed line)"
            )
            run.samples, run.samples_source = examples, "packed line"
        elif match := _DENSITY.search(line):
            run.packing_density, run.packing_density_source = float(match[1]), "log (explicit)"
    if examples and run.samples is None:
        run.samples, run.samples_source = examples, "packing bar"
        run.packed = True if run.packed is None else run.packed
    # examples per optimizer step, all ranks together (each rank's bar counts its own steps)
    ranks = run.ranks
    if ranks is None:
        run.problems.append("a distributed run whose log does not say its GPUs (sweepflow's recipes log "
                            "`Epoch length: ... world size N`): no packing density or sample count derived")
    per_step = (run.batch_size or 0) * (run.gradient_accumulation_steps or 1) * (ranks or 0)
    capped = run.max_steps_per_epoch is not None and (run.steps_per_epoch or 0) >= run.max_steps_per_epoch
    whole_epoch = run.full_steps_per_epoch or (None if capped else run.steps_per_epoch)  # a capped bar is not one
    if run.packing_density is None and run.packed and examples and whole_epoch and per_step:
        # torchtune drops the last partial batch, so this slightly over-states density (an upper bound)
        run.packing_density = round(examples / (whole_epoch * per_step), 2)
        run.packing_density_source = "derived: packing bar / (steps per epoch x batch size)"
    if run.packed is False:
        run.packing_density, run.packing_density_source = 1.0, "not packed"
        if run.samples is None and whole_epoch and per_step:
            run.samples, run.samples_source = whole_epoch * per_step, "steps x batch (lower bound)"


def _parse_saved(run: PriorRun, text: str) -> None:
    per_epoch: dict[int, float] = {}
    for size, epoch in _SAVED.findall(text):
        per_epoch[int(epoch)] = per_epoch.get(int(epoch), 0.0) + float(size)
    if per_epoch:
        run.checkpoint_gib_per_epoch = round(sum(per_epoch.values()) / len(per_epoch), 4)
        run.checkpoint_epochs = len(per_epoch)
        run.checkpoint_source = "log lines"


def _parse_timings(run: PriorRun, text: str) -> dict[int, float]:
    """Seconds per checkpoint save and per validation pass, from the recipes' own timing lines.

    Returns the seconds of validation passes run inside each epoch's bar (validate_every_n_steps):
    every pass of an epoch but its last, which ran at the epoch's end (in an epoch with a save).
    """
    single, alone = [float(v) for v in _SAVE_TIME.findall(text)], _distributed_saves(text)
    passes: dict[int, list[float]] = {}
    for epoch, seconds in _VAL_TIME.findall(text):
        passes.setdefault(int(epoch), []).append(float(seconds))
    computed = [v for values in passes.values() for v in values if v > 0]  # 0.00: an epoch end reusing its step's pass
    if computed:
        run.validation_s = round(statistics.mean(computed), 2)
    # the epochs with a save are the log's first ones (a resumed job's log starts at its resume epoch)
    saved = set(sorted(passes)[: len(single or alone)])
    inside_bars = {epoch: sum(values[:-1] if epoch in saved else values) for epoch, values in passes.items()}
    run.periodic_validation_s = round(sum(inside_bars.values()), 2)
    epoch_end = [values[-1] for epoch, values in passes.items() if epoch in saved]
    if single:  # the epoch-end validation pass runs inside this timing
        run.epoch_end_s = round(statistics.mean(single), 2)
        run.save_s = round(max(run.epoch_end_s - (statistics.mean(epoch_end) if epoch_end else 0.0), 0.0), 2)
    elif alone:  # the distributed recipe times its save alone; the epoch-end pass ran before it
        run.save_s = round(statistics.mean(alone), 2)
        run.epoch_end_s = round(run.save_s + (statistics.mean(epoch_end) if epoch_end else 0.0), 2)
    return inside_bars


def _distributed_saves(text: str) -> list[float]:
    """Seconds of each save of the distributed recipe: its state-dict gather plus the write."""
    saves: list[float] = []
    gathered = 0.0
    for what, seconds in _DIST_SAVE_TIME.findall(text):
        if what == "Saving checkpoint":
            saves.append(gathered + float(seconds))
            gathered = 0.0
        else:  # the optimizer's line includes the model's gather (one clock for both)
            gathered = max(gathered, float(seconds))
    return saves


def folder_bytes(folder: Path) -> int:
    """Sum of the sizes of every file under a folder (what `du -b` reports), links not followed."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def _add_sidecars(run: PriorRun, folder: Path) -> None:
    epochs = sorted(p for p in folder.glob("epoch_*") if p.is_dir())
    sizes = [folder_bytes(p) for p in epochs]
    if sizes:  # kept apart: folders pruned after the run (placeholders) do not override what torchtune logged
        run.checkpoint_du_gib_per_epoch = sum(sizes) / len(sizes) / 1024**3
    if sizes and sum(sizes) > 0 and run.checkpoint_gib_per_epoch is None:
        run.checkpoint_gib_per_epoch = sum(sizes) / len(sizes) / 1024**3
        run.checkpoint_epochs = len(sizes)
        run.checkpoint_source = "du of epoch_* folders"
    steps: list[float] = []
    for metric_file in sorted((folder / "logs").glob("log_*.txt")):  # DiskLogger's per-step metrics
        try:
            steps += [float(v) for v in _MEM_STEP.findall(_read(metric_file))]
        except OSError:
            continue
    if steps:
        run.peak_memory_gib = round(max(steps + ([run.peak_memory_gib] if run.peak_memory_gib else [])), 2)
        run.memory_during_training = True
    for name, data in _sidecars(folder):
        named = _sidecar_model(data, folder)
        if named and (run.model is None or run.model_source == "model._component_" or run.model not in REGISTRY):
            run.model, run.model_source = named, name
        for key in SIDECAR_FIELDS:  # settings the (truncated) log did not show
            value = data.get(key)
            fits = isinstance(value, bool) if key == "packed" else _int(value) is not None
            if getattr(run, key) is None and fits:
                setattr(run, key, value)
    if run.epochs and run.epochs_completed >= run.epochs and not run.oom:
        run.completed = True
    _add_job_elapsed(run, folder)


def _add_job_elapsed(run: PriorRun, folder: Path) -> None:
    """The job's own elapsed time when the log is a sweepflow fine-tune's (`<group>/<run>/<job log>`).

    The job id is read from the log's name as any registered backend names its logs.
    """
    job_id = next((i for kind in BACKENDS.values() if (i := kind.naming.job_id_of(run.log_path))), None)
    status_file = folder.parent / STATUS_FILE
    if not job_id or not status_file.is_file() or run.train_elapsed_s is None:
        return
    try:
        status = StatusStore(status_file).read()
        attempts = status.stage(folder.name).attempts
    except (SweepflowError, KeyError):
        return
    elapsed = next((a.elapsed_s for a in attempts if a.job_id == job_id and a.scheduler_state == "COMPLETED"), None)
    if elapsed and elapsed >= run.train_elapsed_s:
        run.job_elapsed_s = elapsed
        run.overhead_s = round(elapsed - run.train_elapsed_s, 1)
        if run.epoch_end_s is not None and run.epochs_completed:
            run.startup_s = round(max(run.overhead_s - run.epoch_end_s * run.epochs_completed, 0.0), 1)


def _sidecars(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name in SIDECARS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            found.append((name, data))
    return found


def _sidecar_model(data: dict[str, Any], folder: Path) -> str | None:
    for key in ("torchtune_model_name", "model_name", "model"):
        if isinstance(data.get(key), str):
            return data[key]
    runs = data.get("runs")
    if isinstance(runs, list):  # a sweepflow plan: the run named like this folder, else its only model
        for r in runs:
            if isinstance(r, dict) and r.get("name") == folder.name and isinstance(r.get("model"), str):
                return r["model"]
        models = {r.get("model") for r in runs if isinstance(r, dict)}
        if len(models) == 1 and isinstance(next(iter(models)), str):
            return str(next(iter(models)))
    return None

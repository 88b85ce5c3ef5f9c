"""setup-experiment: every generated file of a run group, and how it is written.

- golden files for the seed's 2x2 example (`examples/seed_2x2/design.yaml`), every file;
- `tune validate` (in process) on every generated finetune.yaml;
- `bash -n` and `shellcheck -S style` on every generated script (several cluster variants);
- hostile input: prompts and paths full of shell syntax, run through the generated scripts with
  stub `tune`/`inspect`/`python`/`sbatch` executables that record the argv they receive;
- idempotency, edits kept (or backed up), dry run, failures that write nothing, status kept.

The golden site is built under the fixed folder /tmp/sweepflow-golden-site (its paths appear in
the files) with the repository path pinned to /opt/sweepflow. Regenerate the golden files with
`UPDATE_GOLDEN=1 pytest tests/test_setup.py`.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from filelock import FileLock

import tasks.setup.files as setup_files
from tasks.core.errors import DesignError
from tasks.core.templating import shell_quote
from tasks.model.cluster import cluster_settings
from tasks.model.design import ExperimentDesign
from tasks.model.design_file import parse_design
from tasks.model.layout import PLAN_MD, STATUS_FILE
from tasks.model.plan import Plan
from tasks.model.plan_file import load_plan
from tasks.model.status_file import StatusStore, load_status
from tasks.planning.deliver import deliver_plan
from tasks.planning.planner import build_plan
from tasks.setup.experiment import SETUP_BEGIN, SETUP_END, SetupReport, set_up_group
from tasks.setup.files import experiment_files
from tasks.setup.materialize import MANIFEST
from tasks.training.config import FinetuneContext, validate_config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakesite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "seed_2x2_setup"
GOLDEN_SITE = Path("/tmp/sweepflow-golden-site")  # fixed: its paths are in the golden files
FAKE_HOME = Path("/opt/sweepflow")  # the repository path written into scripts and configs
DATE = "2025-10-18"
NOW = datetime(2025, 10, 18, 9, 45, tzinfo=timezone.utc)
NOW_TEXT = NOW.isoformat(timespec="seconds")
SHELLCHECK = shutil.which("shellcheck")
SECTION_FILE = "runs_plan.md.setup-section"  # golden name of runs_plan.md's Setup section


# ------------------------------------------------------------------ sites and groups


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def seed_design(root: Path) -> ExperimentDesign:
    """The seed example, its relative paths resolved under `root`, over fake resources made there."""
    data = yaml.safe_load((REPO / "examples" / "seed_2x2" / "design.yaml").read_text())
    fakesite.make_models(root / "models", data["models"])
    words = [f"w{i:07d}" for i in range(100)]  # 8 letters, like the seed's words_8L
    records = [{"input": w, "output": w.capitalize()} for w in words]
    _write(root / data["dataset"]["path"], json.dumps({"train": records[:80], "validation": records[80:90], "test": records[90:]}))
    for task in data["evaluation"]["tasks"]:
        _write(root / task["script"], "# inspect-ai task file\n")
        if task.get("dataset"):
            _write(root / task["dataset"], json.dumps([{"input": "2+2", "output": "4"}] * 5))
    data["paths"] = {"models_dir": str(root / "models"), "output_dir": str(root / "experiments"), "prior_runs": [str(root / "old")]}
    return parse_design(data, source="seed_2x2", base=root)


def planned(design: ExperimentDesign | dict, base: Path | None = None) -> Path:
    """Plan and deliver a design (fixed date and time); return the run group folder."""
    if isinstance(design, dict):
        design = parse_design(design, base=base)
    return deliver_plan(build_plan(design, date=DATE, now=NOW), now=NOW_TEXT)


def pin_repo_path(monkeypatch: pytest.MonkeyPatch, home: Path = FAKE_HOME) -> None:
    """Write `home` wherever generated files name the repository (PYTHONPATH, `tune` hints)."""
    monkeypatch.setattr(setup_files, "SWEEPFLOW_HOME", home)
    from_plan = FinetuneContext.from_plan.__func__
    monkeypatch.setattr(
        FinetuneContext, "from_plan", classmethod(lambda cls, plan, **kw: from_plan(cls, plan, **{"repo_root": home, **kw}))
    )


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int, int]]:
    """Every file under root: content, mtime, inode (a rewrite changes it) and mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            found[path.relative_to(root).as_posix()] = (path.read_bytes(), st.st_mtime_ns, st.st_ino, st.st_mode)
    return found


def folders(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def setup_section(group: Path) -> str:
    text = (group / PLAN_MD).read_text()
    start, end = text.index(SETUP_BEGIN), text.index(SETUP_END) + len(SETUP_END)
    return text[start:end] + "\n"


def scripts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix == ".slurm" or p.name == "submit_all.sh")


def plan_of(group: Path) -> Plan:
    return load_plan(group)


@pytest.fixture(scope="module")
def seed_group(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seed")
    group = planned(seed_design(root))
    set_up_group(group)
    return group


# Full-featured variant: 2 GPUs (distributed recipe), validation, best epoch, adapter-only
# checkpoints (evaluations merge first), every cluster option.
SITE_ENV = "site env.sh"
FULL_CLUSTER = {
    "account": "lab",
    "partition": "gpu",
    "qos": "normal",
    "constraint": "a100",
    "time_limit": "1-00:00:00",
    "extra_sbatch": ["--mail-type=END"],
    "max_queued_jobs": 5,
}


@pytest.fixture(scope="module")
def full_group(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full")
    site_env = _write(root / SITE_ENV, 'echo "site env loaded ${SOME_UNSET_VARIABLE}"\n')  # fails under set -u
    cluster = {
        **FULL_CLUSTER,
        "env_setup": ["module load cuda/12.1", f"source {shlex.quote(str(site_env))}", "export HF_HOME=/scratch/$USER/hf"],
    }
    data = fakesite.design(
        root,
        name="full",
        training={"epochs": 2, "validation": True, "validate_every_n_steps": 10, "save_adapter_weights_only": True},
        gpu={"count": 2, "memory_gb": 80},
        cluster=cluster,
    )
    data["evaluation"] = {**data["evaluation"], "epochs": "best", "limit": 5, "max_tokens": 16}
    group = planned(data, base=root)
    # the scripts' PATH must reach the recording stubs, not sweepflow's real tune/inspect
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(setup_files, "python_bin", lambda: root / "no-such-venv" / "bin")
        set_up_group(group)
    return group


# ------------------------------------------------------------------ golden files


def golden_files(group: Path, report: SetupReport) -> dict[str, str]:
    """Every generated file, the manifest, runs_status.yaml and runs_plan.md's Setup section."""
    files = {change.path: (group / change.path).read_text() for change in report.changes}
    files[MANIFEST.as_posix()] = (group / MANIFEST).read_text()
    files[STATUS_FILE] = (group / STATUS_FILE).read_text()
    files[SECTION_FILE] = setup_section(group)
    return files


def test_seed_2x2_golden_files(monkeypatch: pytest.MonkeyPatch) -> None:
    pin_repo_path(monkeypatch)
    with FileLock(f"{GOLDEN_SITE}.lock"):
        shutil.rmtree(GOLDEN_SITE, ignore_errors=True)
        GOLDEN_SITE.mkdir(parents=True)
        try:
            group = planned(seed_design(GOLDEN_SITE))
            report = set_up_group(group)
            actual = golden_files(group, report)
            modes = {c.path: (group / c.path).stat().st_mode & 0o777 for c in report.changes}
        finally:
            shutil.rmtree(GOLDEN_SITE, ignore_errors=True)
    assert report.count("create") == len(report.changes) == 36
    assert {p for p, m in modes.items() if m == 0o755} == {p for p in modes if p.endswith((".slurm", ".sh"))}
    assert set(modes.values()) == {0o755, 0o644}
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, text in actual.items():
            _write(GOLDEN / rel, text)
    expected = {p.relative_to(GOLDEN).as_posix(): p.read_text() for p in GOLDEN.rglob("*") if p.is_file()}
    assert sorted(actual) == sorted(expected), "generated files differ from the golden set (UPDATE_GOLDEN=1 regenerates)"
    for rel, text in actual.items():
        assert text == expected[rel], f"{rel} differs from tests/golden/seed_2x2_setup/{rel} (UPDATE_GOLDEN=1 regenerates)"


def test_seed_2x2_files_follow_the_plan(seed_group: Path) -> None:
    plan = plan_of(seed_group)
    files = {c.path for c in set_up_group(seed_group).changes}
    finetuned = [r.name for r in plan.finetune_runs]
    assert finetuned == [
        "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64", "Llama-3.2-3B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank64"
    ]
    for run in finetuned:
        assert {f"{run}/finetune.yaml", f"{run}/finetune.slurm", f"{run}/setup_finetune.yaml"} <= files
        for task in ("capitalization_8L", "reasoning"):
            assert f"{run}/evaluations/{task}/eval_epoch_1.slurm" in files  # last of 2 epochs
    # the matrix: the 1B base model is evaluated on capitalization only
    assert "Llama-3.2-1B-Instruct_base/evaluations/capitalization_8L/eval.slurm" in files
    assert not any(f.startswith("Llama-3.2-1B-Instruct_base/evaluations/reasoning") for f in files)
    assert not any(f.startswith("Llama-3.2-3B-Instruct_base/finetune") for f in files)
    submit = (seed_group / "submit_all.sh").read_text()
    assert [line for line in submit.splitlines() if "sbatch finetune.slurm" in line] == [
        f"(cd {run} && sbatch finetune.slurm)" for run in finetuned
    ]
    args = yaml.safe_load((seed_group / finetuned[0] / "evaluations" / "reasoning" / "task_args.yaml").read_text())
    assert args == {"system_prompt": "", "dataset": str(plan.design.evaluation.tasks[1].dataset)}


# ------------------------------------------------------------------ tune validate


def test_tune_validate_every_generated_config(seed_group: Path, full_group: Path) -> None:
    configs = sorted(seed_group.glob("*/finetune.yaml")) + sorted(full_group.glob("*/finetune.yaml"))
    assert len(configs) == 8
    for config in configs:
        ok, message = validate_config(config)
        assert ok, f"{config}: {message}"
    full = yaml.safe_load(next(full_group.glob("*/finetune.yaml")).read_text())
    assert "dataset_val" in full and full["device"] == "cuda"
    assert "lora_finetune_distributed_val.py" in (next(full_group.glob("*/finetune.slurm"))).read_text()


# ------------------------------------------------------------------ bash -n and shellcheck


def _check_scripts(paths: list[Path]) -> None:
    assert paths
    for path in paths:
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"bash -n {path}: {proc.stderr}"
        assert path.read_text().startswith("#!/bin/bash\n")
    if SHELLCHECK is None:
        pytest.skip("shellcheck is not installed (Debian package `shellcheck`): only `bash -n` was checked")
    proc = subprocess.run([SHELLCHECK, "-S", "style", "-f", "gcc", *map(str, paths)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout, f"shellcheck -S style:\n{proc.stdout}{proc.stderr}"


def test_scripts_pass_bash_n_and_shellcheck_seed(seed_group: Path) -> None:
    paths = scripts(seed_group)
    assert len(paths) == 4 + 11 + 1  # fine-tunes, evaluations (4 x 2 tasks + 3 base), submit_all.sh
    _check_scripts(paths)


def test_scripts_pass_bash_n_and_shellcheck_full_cluster(full_group: Path) -> None:
    paths = scripts(full_group)
    text = (full_group / plan_of(full_group).finetune_runs[0].name / "finetune.slurm").read_text()
    for line in ("#SBATCH --account=lab", "#SBATCH --partition=gpu", "#SBATCH --qos=normal", "#SBATCH --constraint=a100",
                 "#SBATCH --mail-type=END", "#SBATCH --gres=gpu:2", "#SBATCH --time=1-00:00:00", "module load cuda/12.1"):
        assert line in text.splitlines()
    assert any("tasks.evaluation.best_epoch" in p.read_text() for p in paths)
    _check_scripts(paths)


def test_scripts_pass_bash_n_and_shellcheck_cpu(seed_group: Path) -> None:
    report = set_up_group(seed_group, preview=True, cluster_overrides={"device": "cpu", "env_setup": ["source ~/venv/bin/activate"]})
    try:
        paths = scripts(report.preview_dir)
        assert any("-M device=cpu" in p.read_text() for p in paths)
        assert not any("--gres" in p.read_text() for p in paths)
        _check_scripts(paths)
    finally:
        shutil.rmtree(report.preview_dir)


# ------------------------------------------------------------------ hostile input


HOSTILE_DIR = "site dir $x 'q' \"dq\" `touch PWNED_TICK` $(touch PWNED_SUB) ${HOME} ${oc.env:HOME} ;&|<>*?[a] ~ \\ end\nnl !x"


def hostile_prompt(marker_dir: Path) -> str:
    return (
        f"You're a \"helper\". $(touch {marker_dir}/PWNED_PROMPT) `touch {marker_dir}/PWNED_PROMPT_TICK`\n"
        "second line; rm -rf ~ && echo ${HOME} $HOME ${oc.env:HOME} \\n \\ ' \" end\t| cat > /dev/null # PROMPT-MARKER"
    )


STUB = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["STUB_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"prog": name, "argv": sys.argv[1:], "cwd": os.getcwd(), "PYTHONPATH": os.environ.get("PYTHONPATH")}}) + "\\n")
if name == "hostname":
    print("stub-node")
if name == "python":
    print(os.environ.get("STUB_BEST_EPOCH", ""))
"""


class Sandbox:
    """Runs a generated script with `bash`, the programs it calls replaced by recording stubs."""

    PROGRAMS = ("tune", "inspect", "python", "hostname", "sbatch", "module")

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "stub bin"
        self.bin.mkdir(parents=True)
        for name in self.PROGRAMS:
            stub = self.bin / name
            stub.write_text(STUB.format(python=sys.executable))
            stub.chmod(0o755)
        self.log = root / "calls.jsonl"
        self.cwd = root / "cwd"
        self.cwd.mkdir()

    def run(self, script: Path, **env: str) -> list[dict[str, Any]]:
        self.log.write_text("")
        environ = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.root / "home"), "STUB_LOG": str(self.log),
                   "LANG": "C.UTF-8", **env}
        proc = subprocess.run(["bash", str(script)], cwd=self.cwd, env=environ, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{script}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def expected_eval_argv(plan: Plan, run_name: str, task_name: str, epoch: Any, model_path: str, device: str = "cuda") -> list[str]:
    """The `inspect eval` command line an evaluation script should run (the intended one)."""
    evaluation = plan.design.evaluation
    task = next(t for t in evaluation.tasks if t.name == task_name)
    ref = str(task.script) + (f"@{task.task_function}" if task.task_function else "")
    label = f"hf/{run_name}" if epoch is None else f"hf/{run_name}_epoch_{epoch}"
    argv = ["eval", ref, "--model", label, "-M", f"model_path={model_path}"]
    argv += ["-M", "device=cpu"] if device == "cpu" else []
    argv += ["-M", "do_sample=false", "--max-tokens", str(evaluation.max_tokens)]
    argv += ["--limit", str(evaluation.limit)] if evaluation.limit else []
    return argv + [
        "--task-config", "task_args.yaml",
        "--metadata", f"run={run_name}",
        "--metadata", f"epoch={'base' if epoch is None else epoch}",
        "--metadata", f"is_finetuned={'false' if epoch is None else 'true'}",
        "--metadata", f"design_hash={plan.design_hash}",
        "--log-dir", "logs",
        "--display", "none",
    ]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": "exp; rm -rf ~"}, "name"),
        ({"name": "$(touch pwned)"}, "name"),
        ({"name": "exp\nnext"}, "name"),
        ({"task": "cap`id`"}, "task"),
        ({"models": ["Llama-3.2-1B-Instruct'; id; '"]}, "models[0]"),
        ({"evaluation": {"tasks": [{"name": "cap$(id)", "script": "/x.py"}]}}, "evaluation.tasks[0].name"),
        ({"evaluation": {"tasks": [{"name": "../../etc", "script": "/x.py"}]}}, "evaluation.tasks[0].name"),
    ],
)
def test_hostile_names_are_rejected_by_the_design(tmp_path: Path, changes: dict, field: str) -> None:
    with pytest.raises(DesignError) as caught:
        parse_design(fakesite.design(tmp_path, **changes), base=tmp_path)
    problems = {p.field: p.message for p in caught.value.problems}
    assert field in problems, caught.value.render()
    assert "may contain only letters, digits, '.', '_' and '-'" in problems[field]


def test_hostile_factor_label_and_cluster_values_are_rejected(tmp_path: Path) -> None:
    design = parse_design(fakesite.design(tmp_path, factors={"lora_rank": [4], "learning_rate": {"lr$(id)": 1e-4}}), base=tmp_path)
    with pytest.raises(DesignError) as caught:
        build_plan(design, date=DATE, now=NOW)
    assert any("level label 'lr$(id)' may contain only" in p.message for p in caught.value.problems), caught.value.render()
    for bad in ({"account": "lab; rm -rf ~"}, {"partition": "gpu\n#SBATCH --wrap=id"}, {"extra_sbatch": ["--wrap=$(id)"]},
                {"time_limit": "1:00:00; id"}, {"mem": "32G $(id)"}):
        with pytest.raises(DesignError) as caught:
            cluster_settings(design, bad)
        assert caught.value.problems[0].field == f"cluster.{next(iter(bad))}", caught.value.render()


def test_hostile_prompt_and_paths_never_reach_a_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / HOSTILE_DIR
    root.mkdir()
    home = tmp_path / "repo $(touch PWNED_HOME) 'x' `y`"
    monkeypatch.setattr(setup_files, "SWEEPFLOW_HOME", home)
    prompt = hostile_prompt(tmp_path)
    data = fakesite.design(root, name="hostile", training={"epochs": 2, "system_prompt": prompt})
    data["evaluation"]["tasks"][0]["task_function"] = "cap_task"
    group = planned(data, base=root)
    report = set_up_group(group)
    assert report.count("create") == len(report.changes)
    plan = plan_of(group)
    assert str(plan.group_dir).startswith(str(root)) and "$(touch PWNED_SUB)" in str(plan.group_dir)

    # the prompt lands in task_args.yaml, finetune.yaml and setup_finetune.yaml only, intact
    from omegaconf import OmegaConf

    for path in sorted(group.rglob("*")):
        if path.is_file() and "PROMPT-MARKER" in path.read_text():
            assert path.name in ("task_args.yaml", "finetune.yaml", "setup_finetune.yaml", "experiment.yaml", PLAN_MD,
                                 "experiment.cache.json"), path  # the last: experiment.yaml's JSON read cache
    for args in group.rglob("task_args.yaml"):
        assert yaml.safe_load(args.read_text()) == {"system_prompt": prompt, "dataset": str(plan.design.dataset.path)}
    for run in plan.finetune_runs:
        config = OmegaConf.to_container(OmegaConf.load(group / run.name / "finetune.yaml"), resolve=True)
        assert config["dataset"]["new_system_prompt"] == prompt
        assert config["dataset"]["data_files"] == str(plan.design.dataset.path)
        assert config["output_dir"] == config["checkpointer"]["output_dir"] == str(group / run.name)
        assert config["checkpointer"]["checkpoint_dir"] == str(run.model_dir)
        assert yaml.safe_load((group / run.name / "setup_finetune.yaml").read_text())["system_prompt"] == prompt
        ok, message = validate_config(group / run.name / "finetune.yaml")
        assert ok, message
    _check_scripts(scripts(group))

    # run every script: the stubs must receive exactly the intended arguments
    box = Sandbox(tmp_path / "sandbox")
    recipe = "sweepflow_recipes/lora_finetune_single_device.py"
    for run in plan.finetune_runs:
        run_dir = group / run.name
        calls = box.run(run_dir / "finetune.slurm")
        assert [c["prog"] for c in calls] == ["hostname", "tune"]
        assert calls[1]["argv"] == ["run", recipe, "--config", "finetune.yaml"]
        assert calls[1]["cwd"] == str(run_dir) and calls[1]["PYTHONPATH"] == str(home)
        (run_dir / "epoch_1").mkdir()
    evaluated = 0
    for run in plan.runs:
        for job in run.evaluations:
            script = group / run.name / "evaluations" / job.task / ("eval.slurm" if job.epoch is None else f"eval_epoch_{job.epoch}.slurm")
            model_path = str(run.model_dir if run.is_control else group / run.name / f"epoch_{job.epoch}")
            calls = box.run(script)
            assert [c["prog"] for c in calls] == ["inspect"]
            assert calls[0]["argv"] == expected_eval_argv(plan, run.name, job.task, job.epoch, model_path)
            assert calls[0]["argv"][1].endswith("cap.py@cap_task") and calls[0]["argv"][1].startswith(str(root))
            assert calls[0]["cwd"] == str(script.parent) and calls[0]["PYTHONPATH"] == str(home)
            evaluated += 1
    assert evaluated == len(plan.eval_jobs) == 6
    calls = box.run(group / "submit_all.sh")
    assert [(c["prog"], c["argv"], c["cwd"]) for c in calls] == [
        ("sbatch", ["finetune.slurm"], str(group / run.name)) for run in plan.finetune_runs
    ]
    for script in scripts(group):
        assert "PROMPT-MARKER" not in script.read_text()
    # nothing was executed: no marker file anywhere
    assert not [p for p in tmp_path.rglob("PWNED*")]
    assert not [p for p in Path(tempfile.gettempdir()).glob("PWNED*")]


def test_full_cluster_scripts_run_as_intended(full_group: Path, tmp_path: Path) -> None:
    """Distributed recipe, site env_setup (sourcing a file that reads an unset variable), best epoch."""
    plan = plan_of(full_group)
    box = Sandbox(tmp_path / "sandbox")
    run = plan.finetune_runs[0]
    calls = box.run(full_group / run.name / "finetune.slurm")
    assert [c["prog"] for c in calls] == ["module", "hostname", "tune"]
    assert calls[0]["argv"] == ["load", "cuda/12.1"]
    assert calls[2]["argv"] == ["run", "--nproc_per_node", "2", "sweepflow_recipes/lora_finetune_distributed_val.py", "--config", "finetune.yaml"]
    best = full_group / run.name / "epoch_0"
    best.mkdir(exist_ok=True)
    job = run.evaluations[0]
    assert job.epoch == "best"
    scratch = tmp_path / "node scratch"
    scratch.mkdir()
    calls = box.run(full_group / run.name / "evaluations" / job.task / "eval_epoch_best.slurm", STUB_BEST_EPOCH=str(best),
                    TMPDIR=str(scratch))
    assert [c["prog"] for c in calls] == ["module", "python", "python", "inspect"]
    assert calls[1]["argv"] == ["-m", "tasks.evaluation.best_epoch", str(full_group / run.name)]
    # adapter-only checkpoints: the best epoch's adapter is merged into the base model on scratch, then evaluated
    merged = calls[2]["argv"][-1]
    assert calls[2]["argv"] == ["-m", "tasks.evaluation.merge_adapter", str(best), str(run.model_dir), merged]
    assert Path(merged).parent == scratch and not Path(merged).exists()  # deleted when the job ended
    assert calls[3]["argv"] == expected_eval_argv(plan, run.name, job.task, "best", merged)
    assert "--limit" in calls[3]["argv"]
    control = next(r for r in plan.control_runs if r.evaluations)
    calls = box.run(full_group / control.name / "evaluations" / control.evaluations[0].task / "eval.slurm")
    assert [c["prog"] for c in calls] == ["module", "inspect"]  # a base model is evaluated as it is


def test_shell_quote_round_trips_through_bash(tmp_path: Path) -> None:
    values = ["", "plain", "a b", "it's", "x$y", "`id`", "$(touch PWNED)", "end\\", "a\\'b", "new\nline", "bang!x",
              "${HOME}", "~", "~/x y", "~~$", "tab\tx", ";&|<>*?[a]", "'q' \"dq\"", "ünï cødé", "-n", "{a,b}", "\\", "$"]
    script = _write(tmp_path / "quote.sh", "#!/bin/bash\n" + "".join(f"printf '%s\\0' {shell_quote(v)}\n" for v in values))
    out = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, check=True).stdout.decode()
    assert out.split("\0")[:-1] == values
    assert not list(tmp_path.glob("PWNED*"))
    assert shell_quote("/plain/path-1.2_x") == "/plain/path-1.2_x"  # what the golden files rely on
    if SHELLCHECK:
        proc = subprocess.run([SHELLCHECK, "-S", "style", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


# ------------------------------------------------------------------ idempotency, edits, dry run


@pytest.fixture
def group(tmp_path: Path) -> Path:
    """A planned (not yet set up) 2 models x 2 ranks + controls group."""
    return planned(fakesite.design(tmp_path), base=tmp_path)


def test_setup_twice_changes_nothing(group: Path) -> None:
    first = set_up_group(group)
    assert first.count("create") == len(first.changes) == 26
    before = snapshot(group)
    assert MANIFEST.as_posix() in before and SETUP_BEGIN in (group / PLAN_MD).read_text()
    second = set_up_group(group)
    assert second.count("unchanged") == len(second.changes) and second.status_entries_added == 0
    assert snapshot(group) == before  # same bytes, same mtimes and inodes: nothing rewritten
    assert not [p for p in group.rglob("*.tmp")]


def test_setup_is_deterministic_across_groups(tmp_path: Path) -> None:
    """Two groups planned from the same design in different folders differ only by the folder."""
    a = planned(fakesite.design(tmp_path / "a"), base=tmp_path / "a")
    b = planned(fakesite.design(tmp_path / "b"), base=tmp_path / "b")
    set_up_group(a)
    set_up_group(b)

    def normalized(group: Path, root: Path) -> dict[str, str]:
        digest = plan_of(group).design_hash  # of the resolved design: it holds the absolute paths
        files = {}
        for rel, (content, *_) in snapshot(group).items():
            text = content.decode().replace(str(root), "<root>").replace(digest, "<hash>").replace(digest[:12], "<hash>")
            files[rel] = text
        # these hold the free disk space measured at planning (the cache: experiment.yaml as JSON)
        files.pop("experiment.yaml"), files.pop(PLAN_MD), files.pop(".sweepflow/experiment.cache.json")
        return files

    files_a, files_b = normalized(a, tmp_path / "a"), normalized(b, tmp_path / "b")
    manifest_a, manifest_b = files_a.pop(MANIFEST.as_posix()), files_b.pop(MANIFEST.as_posix())  # hashes of the files
    assert files_a == files_b
    assert sorted(yaml.safe_load(manifest_a)["files"]) == sorted(yaml.safe_load(manifest_b)["files"])


def test_user_edit_is_kept_and_backed_up_when_overwritten(group: Path) -> None:
    set_up_group(group)
    run = plan_of(group).finetune_runs[0].name
    config, script = f"{run}/finetune.yaml", f"{run}/evaluations/cap/eval_epoch_1.slurm"
    generated = {rel: (group / rel).read_text() for rel in (config, script)}
    edited = {rel: text + "# my change\n" for rel, text in generated.items()}
    for rel, text in edited.items():
        (group / rel).write_text(text)

    report = set_up_group(group)
    assert {c.path for c in report.changes if c.action == "kept-edit"} == {config, script}
    assert report.count("unchanged") == len(report.changes) - 2
    assert all((group / rel).read_text() == text for rel, text in edited.items())

    # a changed setting updates the files nobody edited, and still keeps the edited ones
    other = plan_of(group).finetune_runs[1].name
    report = set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    updated = {c.path for c in report.changes if c.action == "update"}
    assert f"{other}/finetune.slurm" in updated and f"{run}/finetune.slurm" in updated
    assert "#SBATCH --time=08:00:00" in (group / other / "finetune.slurm").read_text()
    assert {c.path for c in report.changes if c.action == "kept-edit"} == {config, script}
    assert all((group / rel).read_text() == text for rel, text in edited.items())

    report = set_up_group(group, overwrite_edits=True)
    overwritten = {c.path: c.backup for c in report.changes if c.action == "overwrite-edit"}
    assert set(overwritten) == {config, script}
    for rel, backup in overwritten.items():
        assert backup is not None and backup.startswith(f"{rel}.bak-")
        assert (group / backup).read_text() == edited[rel]
        assert (group / rel).read_text() == generated[rel]
    assert ((group / script).stat().st_mode & 0o777) == 0o755
    again = set_up_group(group)
    assert again.count("unchanged") == len(again.changes)

    # a second overwrite within the same second never replaces the first backup
    (group / config).write_text("# edited again\n")
    report = set_up_group(group, overwrite_edits=True)
    backups = sorted(p.name for p in (group / run).glob("finetune.yaml.bak-*"))
    assert len(backups) == 2
    assert {(group / run / b).read_text() for b in backups} == {edited[config], "# edited again\n"}


def test_deleted_file_is_recreated(group: Path) -> None:
    set_up_group(group)
    (group / "submit_all.sh").unlink()
    shutil.rmtree(group / plan_of(group).control_runs[0].name)
    report = set_up_group(group)
    assert {c.path for c in report.changes if c.action == "create"} == {
        "submit_all.sh", f"{plan_of(group).control_runs[0].name}/evaluations/cap/eval.slurm",
        f"{plan_of(group).control_runs[0].name}/evaluations/cap/task_args.yaml",
    }
    assert os.access(group / "submit_all.sh", os.X_OK)


def test_dry_run_writes_nothing_and_reports_changes(group: Path) -> None:
    before, dirs = snapshot(group), folders(group)
    report = set_up_group(group, preview=True)
    try:
        assert report.dry_run and report.preview_dir is not None and not report.preview_dir.is_relative_to(group)
        assert snapshot(group) == before and folders(group) == dirs  # not even .sweepflow/
        assert report.count("create") == len(report.changes) == 26
        assert report.summary().endswith("would change: 26 create")
        plan = plan_of(group)
        expected = experiment_files(plan, cluster_settings(plan.design))
        preview = snapshot(report.preview_dir)
        assert sorted(preview) == sorted(expected)
        for rel, generated in expected.items():
            assert preview[rel][0].decode() == generated.content
            assert preview[rel][3] & 0o777 == (0o755 if generated.executable else 0o644)
    finally:
        shutil.rmtree(report.preview_dir)

    set_up_group(group)
    run = plan_of(group).finetune_runs[0].name
    (group / run / "finetune.yaml").write_text("# mine\n")
    before = snapshot(group)
    report = set_up_group(group, preview=True, cluster_overrides={"eval_time_limit": "02:00:00"})
    try:
        actions = {c.path: c.action for c in report.changes}
        assert actions[f"{run}/finetune.yaml"] == "kept-edit"
        assert {p for p, a in actions.items() if a == "update"} == {p for p in actions if "/evaluations/" in p and p.endswith(".slurm")}
        assert "#SBATCH --time=02:00:00" in (report.preview_dir / run / "evaluations/cap/eval_epoch_1.slurm").read_text()
        assert snapshot(group) == before
    finally:
        shutil.rmtree(report.preview_dir)
    report = set_up_group(group, preview=True, overwrite_edits=True)
    shutil.rmtree(report.preview_dir)
    assert {c.path for c in report.changes if c.action == "overwrite-edit"} == {f"{run}/finetune.yaml"}
    assert snapshot(group) == before and not list(group.rglob("*.bak-*"))


# ------------------------------------------------------------------ failures write nothing


def test_render_failure_writes_nothing(group: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = plan_of(group).runs[-1].name  # rendered last: everything else was rendered already
    real = setup_files.render_template

    def exploding(name: str, **context: Any) -> str:
        if name == "jobs/eval.slurm.j2" and context["job"].run == victim:
            raise RuntimeError("template exploded")
        return real(name, **context)

    before, dirs = snapshot(group), folders(group)
    with monkeypatch.context() as patch:
        patch.setattr(setup_files, "render_template", exploding)
        with pytest.raises(RuntimeError, match="template exploded"):
            set_up_group(group)
    assert snapshot(group) == before and folders(group) == dirs

    set_up_group(group)
    before = snapshot(group)
    with monkeypatch.context() as patch:
        patch.setattr(setup_files, "render_template", exploding)
        with pytest.raises(RuntimeError, match="template exploded"):
            set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    assert snapshot(group) == before


def _failing_mkstemp(monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    """tempfile.mkstemp raises 'No space left on device' from its `fail_at`-th call on."""
    real = tempfile.mkstemp
    calls = itertools.count(1)

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if next(calls) >= fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_write_failure_midway_changes_nothing(group: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before, dirs = snapshot(group), folders(group)
    with monkeypatch.context() as patch:
        _failing_mkstemp(patch, fail_at=8)
        with pytest.raises(OSError, match="No space left"):
            set_up_group(group)
    assert snapshot(group) == before and folders(group) == dirs  # no files, no folders, no temporary files

    set_up_group(group)
    before = snapshot(group)
    with monkeypatch.context() as patch:
        _failing_mkstemp(patch, fail_at=3)
        with pytest.raises(OSError, match="No space left"):
            set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    assert snapshot(group) == before

    report = set_up_group(group, cluster_overrides={"time_limit": "08:00:00"})
    assert report.count("update") == 4 and not list(group.rglob("*.tmp"))
    assert set_up_group(group, cluster_overrides={"time_limit": "08:00:00"}).count("update") == 0

    # overwriting an edit that then fails to be written: the edit stays, no backup is left
    edited = group / plan_of(group).finetune_runs[0].name / "finetune.yaml"
    edited.write_text("# mine\n")
    before = snapshot(group)
    with monkeypatch.context() as patch:
        _failing_mkstemp(patch, fail_at=1)
        with pytest.raises(OSError, match="No space left"):
            set_up_group(group, overwrite_edits=True, cluster_overrides={"time_limit": "08:00:00"})
    assert snapshot(group) == before and not list(group.rglob("*.bak-*"))


# ------------------------------------------------------------------ runs_status.yaml and runs_plan.md


def test_status_progress_and_plan_notes_survive_setup(group: Path) -> None:
    set_up_group(group)
    plan = plan_of(group)
    busy, other = plan.finetune_runs[0].name, plan.finetune_runs[1].name
    store = StatusStore(group / STATUS_FILE)

    def progress(status: Any) -> None:
        status.runs[busy].finetune.mark("submitted", job_id="12345", now=NOW_TEXT)
        status.runs[busy].evaluations["cap_epoch_1"].mark("failed", job_id="777", reason="OOM", now=NOW_TEXT)
        del status.runs[other].evaluations["cap_epoch_1"]  # an older file that lacks an entry

    store.update(progress, now=NOW_TEXT)
    with (group / PLAN_MD).open("a") as handle:
        handle.write("\n## My notes\n\nkeep me\n")

    report = set_up_group(group)
    assert report.status_entries_added == 1
    status = load_status(group / STATUS_FILE)
    finetune = status.runs[busy].finetune
    assert (finetune.status, finetune.job_id) == ("submitted", "12345")
    failed = status.runs[busy].evaluations["cap_epoch_1"]
    assert (failed.status, failed.job_id, failed.reason) == ("failed", "777", "OOM")
    assert status.runs[other].evaluations["cap_epoch_1"].status == "pending"
    assert {(run, key) for run, key, _ in status.stages()} == {
        (run.name, key) for run in plan.runs for key in ["finetune", *(job.key for job in run.evaluations)]
    }
    text = (group / PLAN_MD).read_text()
    assert text.count(SETUP_BEGIN) == text.count(SETUP_END) == 1 and text.endswith("## My notes\n\nkeep me\n")

    before = snapshot(group)
    assert set_up_group(group).status_entries_added == 0
    assert snapshot(group) == before

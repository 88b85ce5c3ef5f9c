"""Hostile input never reaches a shell: names, labels and cluster values refused, prompts and paths quoted.

Names and factor labels full of shell syntax are refused by the design; cluster values by the
cluster settings. Prompts and paths full of shell syntax go through setup into the generated
files and are run through the generated scripts with stub `tune`/`inspect`/`python`/`sbatch`
executables that record the argv they receive (tests/support/setup_groups.py `Sandbox`); and
`shell_quote` round-trips any value through bash.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

import tasks.setup._files as setup_files
from tasks.core._errors import DesignError
from tasks.core._templating import shell_quote
from tasks.model._cluster import cluster_settings
from tasks.model._design_file import parse_design
from tasks.backends.slurm import SLURM_NAMING
from tasks.model._layout import PLAN_MD, GroupLayout, eval_script_name, eval_tasks_file_name
from tasks.planning._planner import build_plan
from tasks.setup._experiment import set_up_group
from tasks.training._config import validate_config
from tests.support import fakesite
from tests.support.fakesite import FakeSite
from tests.support.setup_groups import (
    DATE,
    NOW,
    SHELLCHECK,
    Sandbox,
    check_scripts,
    expected_eval_argv,
    expected_tasks_file,
    plan_of,
    planned,
    scripts,
    write_file,
)

# ------------------------------------------------------------------ hostile input


HOSTILE_DIR = "site dir $x 'q' \"dq\" `touch PWNED_TICK` $(touch PWNED_SUB) ${HOME} ${oc.env:HOME} ;&|<>*?[a] ~ \\ end\nnl !x"


def hostile_prompt(marker_dir: Path) -> str:
    return (
        f"You're a \"helper\". $(touch {marker_dir}/PWNED_PROMPT) `touch {marker_dir}/PWNED_PROMPT_TICK`\n"
        "second line; rm -rf ~ && echo ${HOME} $HOME ${oc.env:HOME} \\n \\ ' \" end\t| cat > /dev/null # PROMPT-MARKER"
    )


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
def test_hostile_names_are_rejected_by_the_design(fake_site: FakeSite, changes: dict, field: str) -> None:
    with pytest.raises(DesignError) as caught:
        parse_design(fake_site.design(**changes), base=fake_site.root)
    problems = {p.field: p.message for p in caught.value.problems}
    assert field in problems, caught.value.render()
    assert "may contain only letters, digits, '.', '_' and '-'" in problems[field]


def test_hostile_factor_label_and_cluster_values_are_rejected(fake_site: FakeSite) -> None:
    data = fake_site.design(factors={"lora_rank": [4], "learning_rate": {"lr$(id)": 1e-4}})
    design = parse_design(data, base=fake_site.root)
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
    # the default job environment, this (hostile) clone's .venv: an activate that keeps the stubs on PATH
    (home / ".venv" / "bin").mkdir(parents=True)
    (home / ".venv" / "bin" / "activate").write_text("# stub job environment\n")
    prompt = hostile_prompt(tmp_path)
    data = fakesite.design(root, name="hostile", training={"epochs": 2, "system_prompt": prompt})
    data["evaluation"]["tasks"][0]["task_function"] = "cap_task"
    script = Path(data["evaluation"]["tasks"][0]["script"])
    script.write_text(fakesite.TASK_FILE.replace("def cap(", "def cap_task("))
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
        assert yaml.safe_load(args.read_text()) == {
            "system_prompt": prompt, "dataset": str(plan.design.dataset.path), "split": "test",
            "input_field": "input", "output_field": "output",
        }
    for run in plan.finetune_runs:
        config = OmegaConf.to_container(OmegaConf.load(group / run.name / "finetune.yaml"), resolve=True)
        assert config["dataset"]["new_system_prompt"] == prompt
        assert config["dataset"]["data_files"] == str(plan.design.dataset.path)
        assert config["output_dir"] == config["checkpointer"]["output_dir"] == str(group / run.name)
        assert config["checkpointer"]["checkpoint_dir"] == str(run.model_dir)
        assert yaml.safe_load((group / run.name / "setup_finetune.yaml").read_text())["system_prompt"] == prompt
        ok, message = validate_config(group / run.name / "finetune.yaml")
        assert ok, message
    check_scripts(scripts(group))

    # run every script: the stubs must receive exactly the intended arguments
    box = Sandbox(tmp_path / "sandbox")
    recipe = "sweepflow_recipes/lora_finetune_single_device.py"
    for run in plan.finetune_runs:
        run_dir = group / run.name
        calls = box.run(run_dir / "finetune.slurm")
        assert [c["prog"] for c in calls] == ["python", "hostname", "tune"]  # preflight, then the job
        assert calls[0]["argv"][0] == str(home / "tasks" / "core" / "preflight.py")
        assert calls[2]["argv"] == ["run", recipe, "--config", "finetune.yaml"]
        assert calls[2]["cwd"] == str(run_dir) and calls[2]["PYTHONPATH"] == str(home)
        (run_dir / "epoch_1").mkdir()
    evaluated = 0
    for run in plan.runs:
        for job in run.checkpoint_jobs:
            script = group / run.name / "evaluations" / eval_script_name(job, SLURM_NAMING)
            calls = box.run(script)
            assert calls[0]["prog"] == "python" and calls[0]["argv"][1:3] == ["--stage", "eval"]  # preflight
            if run.is_control:  # a base model is evaluated as it is
                model_path = str(run.model_dir)
                assert [c["prog"] for c in calls] == ["python", "python"]
            else:  # a fine-tune through a view of epoch_N without its adapter files (LoRA applied once)
                assert [c["prog"] for c in calls] == ["python", "python", "python"]
                epoch_dir, model_path = str(group / run.name / f"epoch_{job.epoch}"), calls[1]["argv"][-1]
                assert calls[1]["argv"] == ["-m", "tasks.evaluation.model_view", epoch_dir, model_path]
                assert not Path(model_path).exists()  # removed when the job ended
            inspect = calls[-1]
            assert inspect["argv"] == expected_eval_argv(plan, run.name, job.epoch, model_path)
            tasks_file = yaml.safe_load((script.parent / eval_tasks_file_name(job)).read_text())
            assert tasks_file == expected_tasks_file(plan, run.name, job.epoch)
            assert all(t["task"].endswith("cap.py@cap_task") and t["task"].startswith(str(root))
                       for t in tasks_file["tasks"])
            assert inspect["cwd"] == str(script.parent) and inspect["PYTHONPATH"] == str(home)
            evaluated += len(job.tasks)
    assert evaluated == len(plan.eval_jobs) == 6
    calls = box.run(group / "submit_all.sh")
    layout = GroupLayout(group)
    expected = [(str(group / run.name), "finetune.slurm") for run in plan.finetune_runs] + [
        (str(layout.evals_dir(job.run)), eval_script_name(job, SLURM_NAMING)) for job in plan.checkpoint_jobs]
    assert sorted((c["cwd"], c["argv"][-1]) for c in calls) == sorted(expected)  # every stage, each once
    assert all(c["prog"] == "sbatch" and c["argv"][0] == "--parsable" for c in calls)
    chained = [c for c in calls if any(a.startswith("--dependency=afterok:") for a in c["argv"])]
    assert len(chained) == sum(len(r.checkpoint_jobs) for r in plan.finetune_runs)
    for script in scripts(group):
        assert "PROMPT-MARKER" not in script.read_text()
    # nothing was executed: no marker file anywhere
    assert not [p for p in tmp_path.rglob("PWNED*")]
    assert not [p for p in Path(tempfile.gettempdir()).glob("PWNED*")]


def test_shell_quote_round_trips_through_bash(tmp_path: Path) -> None:
    values = ["", "plain", "a b", "it's", "x$y", "`id`", "$(touch PWNED)", "end\\", "a\\'b", "new\nline", "bang!x",
              "${HOME}", "~", "~/x y", "~~$", "tab\tx", ";&|<>*?[a]", "'q' \"dq\"", "ünï cødé", "-n", "{a,b}", "\\", "$"]
    script = write_file(tmp_path / "quote.sh", "#!/bin/bash\n" + "".join(f"printf '%s\\0' {shell_quote(v)}\n" for v in values))
    out = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, check=True).stdout.decode()
    assert out.split("\0")[:-1] == values
    assert not list(tmp_path.glob("PWNED*"))
    assert shell_quote("/plain/path-1.2_x") == "/plain/path-1.2_x"  # what the golden files rely on
    if SHELLCHECK:
        proc = subprocess.run([SHELLCHECK, "-S", "style", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout

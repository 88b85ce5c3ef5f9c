"""The `sweepflow` command: its table of subcommands, their help, options -> flow parameters, runs here.

Running on a server (`--on-server`) for real: tests/integration/test_ui_design_form.py; from a
freshly installed wheel: tests/test_packaging.py.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweepflow.cli import COMMANDS, build_parser, main
from tests.support.fakesite import DATE, design

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny_demo" / "design.yaml"
DECLARED = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser(name)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _minimal_args(name: str, tmp_path: Path) -> list[str]:
    """The positional arguments a command needs: the example design, or a run group folder."""
    values = {"design": str(EXAMPLE), "group_dir": str(tmp_path / "group")}
    positionals = [a for a in _subparser(name)._actions if not a.option_strings and a.nargs not in ("*", "?")]
    return [name, *(values[a.dest] for a in positionals)]


def test_the_issue_s_commands_are_there() -> None:
    wanted = {"plan", "setup", "launch", "advance", "status", "cancel", "summarize", "check-site", "pilot", "run"}
    assert wanted <= set(COMMANDS)


def test_help_lists_every_command_without_importing_a_flow() -> None:
    code = ("import sys; from sweepflow.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('IMPORTED', sorted(m for m in sys.modules if m == 'prefect' or m.startswith('flows')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name, row in COMMANDS.items():
        assert f"    {name}" in done.stdout and row.help.split()[0] in done.stdout, name
    assert "IMPORTED []" in done.stdout  # --help answers at once: no flow module, no Prefect


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_runs_its_deployment_s_flow(name: str) -> None:
    command = COMMANDS[name].load()
    flow_name = command.flow.name
    assert flow_name in DECLARED, f"{name}: prefect.yaml has no deployment {flow_name}"
    assert command.deployment == f"{flow_name}/{flow_name}"
    path, function = DECLARED[flow_name]["entrypoint"].split(":")
    module = path.removesuffix(".py").replace("/", ".")
    assert getattr(__import__(module, fromlist=[function]), function) is command.flow


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_says_what_a_researcher_needs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    command = COMMANDS[name].load()
    assert " ".join(command.summary.split()) in out
    assert "--on-server" in out and "PREFECT_API_URL" in out
    for action in _subparser(name)._actions:
        if action.dest not in ("help", "command"):
            assert action.help and len(action.help) > 10, f"{name} {action.dest}: no help text"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_options_become_the_flow_s_parameters(name: str, tmp_path: Path) -> None:
    """Every parameter a command builds is one its flow takes; paths are made absolute for a server."""
    command = COMMANDS[name].load()
    args = build_parser(name).parse_args(_minimal_args(name, tmp_path) + (["--auto-approve"] if name == "run" else []))
    params = command.parameters(args)
    accepted = set(inspect.signature(command.flow.fn).parameters)
    assert params and set(params) <= accepted, sorted(set(params) - accepted)
    for key in ("design", "group_dir"):
        if params.get(key) is not None:
            assert Path(params[key]).is_absolute()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_python_m_flows_takes_the_same_options(name: str) -> None:
    command = COMMANDS[name].load()
    own = command.parser("python -m flows.x")
    options = {tuple(a.option_strings) or (a.dest,) for a in own._actions}
    assert options == {tuple(a.option_strings) or (a.dest,) for a in _subparser(name)._actions}


def test_plan_dry_run_prints_the_plan_and_writes_nothing(fake_site, tmp_path, capsys) -> None:
    path = tmp_path / "design.yaml"
    path.write_text(yaml.safe_dump(fake_site.design(name="dry")))
    assert main(["plan", str(path), "--dry-run", "--date", DATE]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"# Run Plan: dry_{DATE}")
    assert "(dry run)" in err and f"would write to {fake_site.group_dir('dry')}" in err
    assert not fake_site.group_dir("dry").exists()


def test_bad_input_exits_2_naming_the_problem(tmp_path, capsys) -> None:
    path = tmp_path / "design.yaml"
    path.write_text("name: x\nmodels: [Llama-3.2-1B-Instruct]\n")
    assert main(["plan", str(path), "--dry-run"]) == 2
    assert "question: required field is missing" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(design(tmp_path)))
    assert main(["plan", str(good), "--dry-run", "--on-server"]) == 2
    assert "--dry-run runs here" in capsys.readouterr().err
    assert main(["summarize", str(tmp_path), "--detach"]) == 2
    assert "--detach goes with --on-server" in capsys.readouterr().err


def test_on_server_without_a_server_says_how_to_get_one(tmp_path, capsys) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["summarize", str(tmp_path), "--on-server"]) == 2
    assert "--on-server needs a Prefect server: set PREFECT_API_URL" in capsys.readouterr().err


def test_run_refuses_when_nobody_could_approve(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["run", str(EXAMPLE)]) == 2
    assert "pass --auto-approve" in capsys.readouterr().err


def test_status_prints_progress_and_every_stage(tmp_path, capsys) -> None:
    from tests.support.fake_scheduler import launched_group, read_status

    group, _ = launched_group(tmp_path)
    assert main(["status", str(group), "--no-sync"]) == 0
    out = capsys.readouterr().out
    stages = list(read_status(group).stages())
    assert f"0/{sum(1 for *_, s in stages if s.status != 'skipped')} stages finished" in out
    for run, key, _ in stages:
        assert any(line.split()[:2] == [run, key] for line in out.splitlines()), f"{run}/{key} not in:\n{out}"


@pytest.mark.slow
def test_plan_dry_run_of_the_example(tmp_path, capsys) -> None:
    """`sweepflow plan examples/tiny_demo/design.yaml --dry-run`, in this process, on the example's own inputs."""
    examples = tmp_path / "examples"
    for folder in ("tiny_demo", "capitalization"):
        shutil.copytree(ROOT / "examples" / folder, examples / folder)
    made = subprocess.run([sys.executable, "-m", "examples.tiny_demo.make_example", str(tmp_path / "demo")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    assert main(["plan", str(examples / "tiny_demo" / "design.yaml"), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# Run Plan: tiny_cap_5L_lora_rank_")
    assert "Llama-3-Tiny-Instruct_rank16_rep2" in out
    assert "5 runs (2 cells x 2 replicates = 4 fine-tuned, 1 control), 9 evaluations in 9 evaluation jobs" in err
    assert not (tmp_path / "demo" / "experiments").exists()

r"""plan-runs: turn an experiment design into an approved, written run plan.

What it does
------------
1. **load-design**: read the design (a YAML file path, YAML text, or the design itself as a
   mapping) and validate it (`tasks.model._design`).
2. **resolve-site**: replace a `paths:` / `cluster:` block name with the saved Prefect
   block's values (`blocks.resolve`).
3. **build-plan**: expand models x factor levels into runs and evaluation jobs, verify
   every model folder, dataset and evaluation script, estimate time, GPU-hours, batch sizes
   and disk from prior SLURM logs, and check free disk (`tasks.planning._planner.build_plan`).
4. **check-site**: on the SLURM backend (or with `check_site=true`), one short job per
   resource shape the plan requests runs the jobs' preflight and loads every planned model's
   config and tokenizers on a compute node (`tasks.setup._site_check`; its folders are under
   `<output_dir>/.site_checks/`). A pass of the same shapes within 7 days is reused. The
   result is the plan's "Site Check" section; a failed check is shown on the approval form
   and, with `auto_approve`, ends the run Failed.
   With `pilot=true`, the **pilot-runs** flow then runs as a subflow (a few steps of each
   model, one checkpoint save, short evaluations: `flows/pilot_runs.py`) and the plan is made
   again from what it measured; the form and runs_plan.md name each figure the pilot measured
   ("measured by pilot"). A failed pilot is shown on the form; with `auto_approve` it ends the run Failed.
5. **render-plan**: render `runs_plan.md` (`tasks.planning._plan_markdown`).
6. **Present**: publish the plan as a markdown artifact (key `plan-<run group>`) and the
   runs as a table artifact (key `runs-<run group>`).
7. **Approve**: unless `auto_approve` is true, pause for a form in the Prefect UI
   (approve, or reject with a comment). A rejected plan ends the run Cancelled.
8. **deliver-plan**: only after approval, write `experiment.yaml`, `runs_plan.md` and
   `runs_status.yaml` into `<output_dir>/<name>_<date>/` (`tasks.planning._deliver`). Nothing is
   written to the output directory before this step (but the site check's and the pilot's own folders).
9. With `continue_to_setup`, go on into the setup-experiment flow (run folders, torchtune
   configs, SLURM scripts) as a subflow.

**compare-group** (right after build-plan): when the run group already exists, the plan is
compared with its recorded design (`tasks.planning._extend`). The identical design is a no-op
(nothing is asked, nothing rewritten); a grown or shrunk design is an *extension*: the form and
runs_plan.md list the new, unchanged and dropped runs and every changed field, and approving it
adds the new runs to the same group (its status, summary and comparisons) and marks the runs no
longer in the design `dropped`; a change that alters what existing runs mean is refused naming
the field. `extend_only=true` says "extend, never start a group": without a date it extends the
newest group of the design's name. See docs/running.md, "Growing a run group".

A design problem (a missing model folder, a bad field, an unknown block, ...) is logged
as one error message listing every problem, and the run ends Failed with that message.
The flow returns the run group folder.

How to run it
-------------
The example's inputs (a tiny model and dataset under demo/) come from `make demo` or
`python -m examples.tiny_demo.make_example demo`. Through a Prefect server (see README.md,
"Running through Prefect")::

    make server && make deploy && make worker
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    prefect deployment run plan-runs/plan-runs \
        --param design=$PWD/examples/tiny_demo/design.yaml --param auto_approve=true --watch

Without `auto_approve` the run pauses; approve it in the UI (http://127.0.0.1:4200: open
the paused run, press Resume, and submit the form), or from Python::

    from prefect.flow_runs import resume_flow_run
    resume_flow_run("<flow run id>", run_input={"approve": True, "comment": "ok"})

As Python (no server needed: Prefect starts a temporary one)::

    from flows.plan_runs import plan_runs
    group_dir = plan_runs("examples/tiny_demo/design.yaml", auto_approve=True)

A design problem then raises `tasks.core._errors.DesignError`. From a shell::

    python -m flows.plan_runs examples/tiny_demo/design.yaml --auto-approve [--date 2025-10-18]

prints the run group folder (exit 0), or the design problems on stderr (exit 2).
`--dry-run` prints runs_plan.md and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.states import State

from blocks.resolve import resolve_site
from flows._cli import FlowCommand, UsageError, absolute, cli_exit
from flows._common import (
    TASK_OPTIONS,
    deliver_now,
    domain_flow,
    fail,
    plan_design,
    reworded,
    site_check_step,
    subflow_result,
)
from flows._notify import notify_check_failed
from flows._plan_approval import await_approval, check_refuses, log_findings, plan_summary, publish_plan
from tasks.core import SweepflowError
from tasks.model import DesignInput, Plan, cluster_settings, read_design
from tasks.planning import (
    ExtensionPlan,
    build_plan,
    prepare_extension,
    render_plan_markdown,
)

# ---------------------------------------------------------------------------------------
# Steps: each returns its value or raises what is wrong (domain_flow logs that once).


def _compare(plan: Plan, extend_only: bool, date_given: bool) -> ExtensionPlan:
    return prepare_extension(plan, datetime.now(UTC).isoformat(timespec="seconds"), extend_only, date_given)


def _plan_and_compare(design_arg: str, date: str | None, extend_only: bool) -> ExtensionPlan:
    """The design planned in this process (no Prefect) and compared with its existing group, if any."""
    return _compare(build_plan(resolve_site(read_design(design_arg)), date=date), extend_only, date is not None)


render_plan_task = task(name="render-plan", **TASK_OPTIONS)(render_plan_markdown)
deliver_plan_task = task(name="deliver-plan", **TASK_OPTIONS)(deliver_now)
compare_group_task = task(name="compare-group", **TASK_OPTIONS)(_compare)


# ---------------------------------------------------------------------------------------
# The flow


@domain_flow("plan-runs")
def plan_runs(
    design: DesignInput,
    auto_approve: bool = False,
    date: str | None = None,
    continue_to_setup: bool = False,
    check_site: bool | None = None,
    site_check_minutes: float = 15,
    pilot: bool = False,
    pilot_steps: int = 20,
    pilot_eval_samples: int = 64,
    extend_only: bool = False,
) -> str | State:
    """Plan a LoRA fine-tuning sweep from a design, get approval, and write the plan.

    Args:
        design: The experiment: fill in the design form (each field says what it means), or give
            the path of a design YAML file (absolute, or relative to the working directory;
            relative paths inside it resolve against its folder) or YAML text.
        auto_approve: skip the approval pause (scripts, tests, `make demo`).
        date: run group date YYYY-MM-DD (default: today).
        continue_to_setup: go on to the setup-experiment flow (run folders, configs,
            SLURM scripts) after the plan is written.
        check_site: run the site check (one short job per resource shape) before approval.
            Unset: on the SLURM backend, unless the same shapes passed within 7 days.
        site_check_minutes: how long the check jobs may take, queue wait included; a check
            still unfinished then is cancelled and reported as timed out (not a failure).
        pilot: before approval, run the pilot-runs flow (per model `pilot_steps` steps of its
            first run, one checkpoint save, each evaluation task on `pilot_eval_samples` test
            samples) and plan again from what it measured; the form names those figures.
        pilot_steps: optimizer steps of each pilot fine-tune.
        pilot_eval_samples: test samples of each pilot evaluation.
        extend_only: extend an existing run group, never start one (without `date`: the newest
            group of the design's name). Without it, a group of the same name and date is
            extended too; otherwise a new group is planned.

    Returns:
        The run group folder holding experiment.yaml, runs_plan.md and runs_status.yaml.
    """
    logger = get_run_logger()

    plan = plan_design(design, date)
    with reworded("{}\nNothing was written."):
        compared = compare_group_task(plan, extend_only, date is not None)
    if compared.kind == "same":
        logger.info("The design is the one %s was planned with: nothing to do, nothing rewritten", plan.run_group)
        return _continue_to_setup(Path(compared.plan.group_dir)) if continue_to_setup else str(compared.plan.group_dir)
    plan = compared.requested or plan
    date = plan.run_group.removeprefix(f"{plan.design.name}_")  # the group's date (extend_only may have found it)
    delta = compared.delta_text()
    if delta:
        logger.info("%s", delta)
    with reworded("The site check could not run; nothing was written.\n{}"):
        checked = site_check_step(plan, check_site, timeout_s=site_check_minutes * 60)
    if checked is not None:
        plan = plan.model_copy(update={"site_check": checked})
        if check_refuses(checked):
            notify_check_failed(plan.run_group, checked.failures(), cluster_settings(plan.design),
                                group_dir=plan.group_dir, checked_at=checked.checked_at)
    pilot_problem: str | None = None
    if pilot and not (checked is not None and check_refuses(checked)):
        measured = _run_pilot(design, date, pilot_steps, pilot_eval_samples)
        if isinstance(measured, str):
            pilot_problem = measured
        else:
            plan = measured.model_copy(update={"site_check": checked})
            compared = _recompare(compared, plan, extend_only)
            delta = compared.delta_text()
    # an extension shows the merged plan: the group's runs as they will be
    shown = compared.plan.model_copy(update={"site_check": plan.site_check}) if compared.extension else plan
    markdown = render_plan_task(shown)
    logger.info("Planned %s", plan_summary(shown))
    log_findings(plan)

    plan_key, runs_key = publish_plan(shown, markdown)
    logger.info("Published artifacts %s and %s", plan_key, runs_key)

    if auto_approve and checked is not None and check_refuses(checked):
        return fail("The site check failed; nothing was written (see the plan artifact's Site Check):\n  - "
                    + "\n  - ".join(checked.failures()))
    if auto_approve and pilot_problem:
        return fail(f"The pilot failed; nothing was written: {pilot_problem}")
    if auto_approve:
        logger.info("Plan auto-approved (auto_approve=true)")
    else:
        refused = await_approval(shown, plan_key, pilot_problem, delta)
        if refused is not None:
            return refused

    group_dir = Path(deliver_plan_task(plan))
    logger.info("Wrote the plan to %s", group_dir)

    if continue_to_setup:
        return _continue_to_setup(group_dir)
    return str(group_dir)


def _recompare(compared: ExtensionPlan, plan: Plan, extend_only: bool) -> ExtensionPlan:
    """The comparison again for a plan made again (the pilot's figures); the first one if it now fails."""
    if compared.extension is None:
        return compared
    try:
        return compare_group_task(plan, extend_only, True)
    except SweepflowError:
        return compared


def _run_pilot(design: DesignInput, date: str | None, steps: int, eval_samples: int) -> Plan | str:
    """Run pilot-runs as a subflow and plan again from its measurements; the problem as a line if it failed."""
    from flows._pilot import pilot_runs  # the pilot runs whole stages; only on request

    state = pilot_runs(design, date=date, steps=steps, eval_samples=eval_samples, return_state=True)
    if not state.is_completed():
        get_run_logger().error("Pilot: %s", state.message)
        return f"pilot-runs ended {state.name}: {state.message}"
    try:
        replanned = plan_design(design, date)
    except SweepflowError as error:
        get_run_logger().error("%s", error)
        return f"planning again after the pilot failed: {error}"
    get_run_logger().info("Planned again from the pilot in %s", state.result())
    return replanned


def _continue_to_setup(group_dir: Path) -> str:
    """Run setup-experiment on the delivered group, as a subflow."""
    from flows._setup import setup_experiment  # the stage after this one

    get_run_logger().info("Continuing with setup-experiment for %s", group_dir)
    subflow_result(setup_experiment(str(group_dir), return_state=True),
                   f"The plan was written to {group_dir}, but setup-experiment")
    return str(group_dir)


# ---------------------------------------------------------------------------------------
# Command line (`python -m flows.plan_runs`, `sweepflow plan`)


def add_arguments(parser: argparse.ArgumentParser, extend: bool = False) -> None:
    """plan-runs' options (`extend`: those of `sweepflow extend`, which always means --extend-only)."""
    parser.add_argument("design", help="the design YAML file (models, factors, dataset, evaluation tasks, paths)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only print the plan (runs_plan.md) and where it would go; write nothing, ask nothing")
    parser.add_argument("--auto-approve", action="store_true", help="write the plan without asking for approval")
    parser.add_argument("--date", help="the run group's date, YYYY-MM-DD (default: today)")
    parser.add_argument("--continue-to-setup", action="store_true",
                        help="after writing the plan, set up the run folders (as `setup` does)")
    parser.add_argument("--pilot", action="store_true",
                        help="first run the pilot (a few steps of each model, short evaluations) and plan from "
                        "what it measured")
    if extend:
        parser.set_defaults(extend_only=True)
    else:
        parser.add_argument("--extend-only", action="store_true",
                            help="extend an existing run group, never start one (without --date: the newest group "
                            "of the design's name): new runs join it, runs no longer in the design are marked dropped")
    parser.add_argument("--check-site", action=argparse.BooleanOptionalAction, default=None,
                        help="run one short job per resource shape before approval "
                        "(default: on SLURM, unless the same check passed within 7 days)")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """plan-runs' parameters from the options; the design is read first, so a bad file fails at once."""
    if args.dry_run and args.on_server:
        raise UsageError("--dry-run runs here and writes nothing; leave out --on-server")
    design = absolute(args.design)
    read_design(design)  # fail fast on a bad file, before Prefect starts
    return {"design": design, "auto_approve": args.auto_approve, "date": args.date,
            "continue_to_setup": args.continue_to_setup, "check_site": args.check_site, "pilot": args.pilot,
            "extend_only": args.extend_only}


def _dry_run(design_arg: str, date: str | None, extend_only: bool = False) -> int:
    compared = _plan_and_compare(design_arg, date, extend_only)
    if compared.kind == "same":
        print(f"(dry run) the design is the one {compared.plan.run_group} was planned with: nothing would change",
              file=sys.stderr)
        return 0
    plan = compared.plan
    print(render_plan_markdown(plan))
    if compared.extension:
        print(f"\n(dry run) {compared.delta_text()}", file=sys.stderr)
    print(f"\n(dry run) {plan_summary(plan)}; would write to {plan.group_dir}", file=sys.stderr)
    return 0


def _confirm_in_terminal(design_arg: str, date: str | None, extend_only: bool = False) -> bool:
    compared = _plan_and_compare(design_arg, date, extend_only)
    if compared.kind == "same":
        print(f"The design is the one {compared.plan.run_group} was planned with: nothing to approve.")
        return True
    plan = compared.plan
    if compared.extension:
        print(compared.delta_text())
    print(f"Plan {plan_summary(plan)}.")
    print(f"It would be written to {plan.group_dir} (see the full plan with --dry-run).")
    return input("Approve and write it? [y/N] ").strip().lower() in {"y", "yes"}


def _show_group(result: Any) -> None:
    group_dir = Path(str(result))
    print(group_dir)
    for name in sorted(p.name for p in group_dir.iterdir()):
        print(f"  {name}")


def run_here(args: argparse.Namespace) -> int:
    """Dry run, or plan in this process; without a server, approval is asked on the terminal."""
    params = parameters(args)
    if args.dry_run:
        return _dry_run(params["design"], args.date, args.extend_only)
    if not params["auto_approve"] and not os.environ.get("PREFECT_API_URL"):
        # No server: nobody could answer the UI form. Ask here instead.
        if not sys.stdin.isatty():
            raise UsageError("plan-runs: without a Prefect server the plan cannot be approved in the UI; "
                             "pass --auto-approve (or --dry-run to only look), or set PREFECT_API_URL")
        if not _confirm_in_terminal(params["design"], args.date, args.extend_only):
            print("Not approved; nothing was written.", file=sys.stderr)
            return 1
        params["auto_approve"] = True
    return cli_exit("plan-runs", plan_runs(**params, return_state=True), show=_show_group)


COMMAND = FlowCommand(
    flow=plan_runs,
    summary="Plan a LoRA sweep from a design: expand the runs, check models, data and tasks, estimate time, "
    "memory and disk, ask for approval, then write experiment.yaml, runs_plan.md and runs_status.yaml.",
    add_arguments=add_arguments,
    parameters=parameters,
    run_here=run_here,
    details="Prints the run group folder and its files (exit 0); a bad design's problems (exit 2); "
    "not approved or failed (exit 1). Without --auto-approve: on a server (--on-server or PREFECT_API_URL) "
    "approve the plan in the Prefect UI's form, else on the terminal.",
)


EXTEND_COMMAND = FlowCommand(
    flow=plan_runs,
    summary="Extend an existing run group with a changed design: new runs (levels, models, replicates) and "
    "evaluations of existing checkpoints (new tasks) join the same group, runs no longer in the design are marked "
    "dropped (files kept); finished runs and their files stay as they are. Shows the difference and asks approval.",
    add_arguments=lambda parser: add_arguments(parser, extend=True),
    parameters=parameters,
    run_here=run_here,
    details="Without --date: the newest group of the design's name. A change to what finished runs mean (their "
    "data, recipe, a training setting, an existing level's value) is refused naming the field: that is a new "
    "group (sweepflow plan). The same design again changes nothing. See docs/running.md, Growing a run group.",
)


def main(argv: list[str] | None = None) -> int:
    """Plan from a shell (`python -m flows.plan_runs DESIGN`); exit 0 written, 1 not approved or failed, 2 bad input."""
    return COMMAND.main("python -m flows.plan_runs", argv)


if __name__ == "__main__":
    sys.exit(main())

"""Tests of tasks/setup (setup-experiment): every generated file of a run group, and how it is written.

- golden files for the seed's 2x2 example (`examples/seed_2x2/design.yaml`), every file:
  test_seed_golden.py;
- `tune validate` (in process) on every generated finetune.yaml, `bash -n` and
  `shellcheck -S style` on every generated script (several cluster variants):
  test_config_and_script_checks.py;
- hostile input: prompts and paths full of shell syntax, run through the generated scripts with
  stub `tune`/`inspect`/`python`/`sbatch` executables that record the argv they receive:
  test_hostile_input.py; the full-featured cluster's scripts (distributed recipe, env_setup, best
  epoch, adapter merge) run the same way: test_full_cluster_scripts.py;
- idempotency, edits kept (or backed up), dry run: test_idempotence_and_edits.py; failures that
  write nothing: test_failures_write_nothing.py; status and runs_plan.md notes kept:
  test_status_and_plan_section.py.

Shared run groups: conftest.py; helpers: tests/support/setup_groups.py.
"""

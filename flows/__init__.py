"""Prefect flows: thin, literate orchestration around the plain functions in `tasks/`.

One module per deployment (see prefect.yaml): plan_runs (`plan-runs`), pilot_runs, setup_experiment,
launch_runs, advance_runs (scheduled), sync_status, cancel_runs, rerun_runs, summarize_experiment, and
run_experiment, the parent that runs the others in order. `_common` holds what they share (task
options, the error-returning task wrapper, artifact names, opening a run group and its backend),
`_advance` the advance step as tasks and artifacts, `_notify` the notifications.
"""

"""Prefect flows: thin orchestration around the plain functions in `tasks/`.

- `flows.plan_runs.plan_runs` (flow `plan-runs`): design -> verified, estimated, approved plan.
"""

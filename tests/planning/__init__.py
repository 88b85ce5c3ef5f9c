"""Tests of tasks/planning: expand, verify, estimate, runs_plan.md rendering, deliver."""

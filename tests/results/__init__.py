"""Tests of tasks/results: summary.md and plots, measured_runs.yaml."""

"""Tests of tasks/model: the design file and its errors, the JSON schema, runs_status.yaml."""

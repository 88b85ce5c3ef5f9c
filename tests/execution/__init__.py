"""Tests of tasks/execution: submit, sync, retries, cancel and reopen, provenance."""

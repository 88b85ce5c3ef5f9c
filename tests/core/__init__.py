"""Tests of tasks/core (errors, files, templating, durations).

No test module lives here yet: core's functions are tested with their callers, number filters
and strict templates in planning/test_render.py, `shell_quote` in setup/test_hostile_input.py,
`dump_yaml` in model/test_status.py, atomic writes in planning/test_deliver.py, durations in
backends/test_local_backend.py and execution/test_retry_policy.py.
"""

"""Helpers the tests share: fake site resources, an in-memory scheduler, hand-built plans, run-group builders.

Nothing here is collected as a test; the pytest fixtures built on these live in tests/conftest.py
(and tests/setup/conftest.py for the setup-experiment groups).
"""

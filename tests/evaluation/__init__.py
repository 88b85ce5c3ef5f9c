"""Tests of tasks/evaluation: best epoch, adapter merge, inspect task references."""

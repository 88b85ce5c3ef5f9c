"""sweepflow domain logic: plain typed functions, testable without Prefect.

Flows in `flows/` call these through thin Prefect task wrappers.
"""

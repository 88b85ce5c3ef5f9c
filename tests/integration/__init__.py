"""Integration tests: a real SLURM cluster, real Prefect servers, a real browser (see conftest.py)."""

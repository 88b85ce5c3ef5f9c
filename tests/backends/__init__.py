"""Tests of tasks/backends: SLURM's text parsers and states, the local backend."""

"""What a run group produced: scores, losses, time, GPU-hours; summary.md, plots, measured_runs.yaml.

Layer 4 (imports the layers below: `core`, `model`, `backends`, `training`, `evaluation`).
"""

from tasks.results.measured import measurements, record_measurements
from tasks.results.summarize import Summary, render_summary, summarize, write_summary

__all__ = ["Summary", "measurements", "record_measurements", "render_summary", "summarize", "write_summary"]

"""The neutral base every stage stands on: errors, safe file writes and YAML, templating, durations.

Layer 0: imports nothing else of sweepflow's.
"""

from tasks.core._durations import format_duration, parse_duration, scale_duration
from tasks.core._errors import DesignError, FileSystemError, Problem, SweepflowError, domain_error
from tasks.core._files import (
    FileFormatError,
    atomic_write_bytes,
    atomic_write_many,
    atomic_write_text,
    dump_yaml,
    format_gib,
    parse_yaml,
    read_log_tail,
    read_yaml,
)
from tasks.core._repo import REPO_ROOT, TEMPLATES_DIR
from tasks.core._templating import render_template, shell_quote

__all__ = [
    "REPO_ROOT",
    "TEMPLATES_DIR",
    "DesignError",
    "FileFormatError",
    "FileSystemError",
    "Problem",
    "SweepflowError",
    "atomic_write_bytes",
    "atomic_write_many",
    "atomic_write_text",
    "domain_error",
    "dump_yaml",
    "format_duration",
    "format_gib",
    "parse_duration",
    "parse_yaml",
    "read_log_tail",
    "read_yaml",
    "render_template",
    "scale_duration",
    "shell_quote",
]

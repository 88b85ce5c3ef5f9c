"""Durations as sweepflow writes them: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.

Reads and writes nothing. Time limits in the cluster settings, in runs_status.yaml and in job
scripts use this one format (it is SLURM's), and the elapsed times backends report
(`[D-][HH:]MM:SS[.mmm]`) read the same way, so there is one parser for all of them.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(?:(\d+)-)?(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?(?::(\d+(?:\.\d+)?))?$")
_NO_LIMIT = {"UNLIMITED", "INFINITE"}


def parse_duration(text: str | None) -> float | None:
    """Seconds of a duration; a bare number is minutes. None for no text, `UNLIMITED`, or not a duration."""
    text = (text or "").strip()
    if not text or text.upper() in _NO_LIMIT:
        return None
    match = _DURATION.match(text)
    if not match:
        return None
    days, a, b, c = match.groups()
    first, second, third = float(a), float(b or 0), float(c or 0)
    if days is not None:  # D-H, D-H:M, D-H:M:S
        return int(days) * 86400 + first * 3600 + second * 60 + third
    if b is None:  # M
        return first * 60
    if c is None:  # M:S
        return first * 60 + second
    return first * 3600 + second * 60 + third  # H:M:S


def format_duration(seconds: float) -> str:
    """`HH:MM:SS`, with `D-` in front from one day on (whole seconds)."""
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def scale_duration(text: str, factor: float) -> str:
    """The duration `text` times `factor`, formatted; ValueError when `text` is not a duration."""
    seconds = parse_duration(text)
    if seconds is None:
        raise ValueError(f"{text!r} is not a time limit like 04:00:00, 1-00:00:00 or 90")
    return format_duration(seconds * factor)

r"""torchtune 0.6.1's log lines: training progress bars and DiskLogger metric lines.

Reads and writes nothing (callers pass the text). The prior-log parser (speed, steps, elapsed
time) and the results (loss curves) both read the bars through `TRAIN_BAR_HEAD`.
- training bars, one tqdm refresh per `\r`:
  `1|49|Loss: 1.23:  45%|████▌     | 49/109 [00:11<00:13,  4.34it/s]` (`s/it` below 1 it/s);
- DiskLogger lines in `logs/log_<unix time>.txt`: `Step 10 | loss:1.83 lr:3e-05 ...`.
"""

from __future__ import annotations

import math
import re

TRAIN_BAR_HEAD = r"(?P<epoch>\d+)\|(?P<step>\d+)\|Loss: (?P<loss>[-+\w.]+):"
TRAIN_BAR = re.compile(
    TRAIN_BAR_HEAD + r"\s+\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)"
    r" \[(?P<elapsed>[\d:]+)<[^,\]]*,\s*(?P<rate>[\d.]+|\?)(?P<unit>it/s|s/it)"
)
TRAIN_BAR_LOSS = re.compile(TRAIN_BAR_HEAD)
_STEP_LINE = re.compile(r"^Step (\d+) \| (.*)$", re.M)
_LOSS = re.compile(r"(?:^|\s)loss:(\S+)")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def disk_logger_losses(text: str) -> dict[int, float]:
    """Step -> loss from a DiskLogger file (`Step N | loss:x lr:y ...`)."""
    curve: dict[int, float] = {}
    for step, payload in _STEP_LINE.findall(text):
        match = _LOSS.search(payload)
        value = _number(match.group(1)) if match else None
        if value is not None:
            curve[int(step)] = value
    return curve


def bar_losses(text: str) -> dict[int, float]:
    """Global step -> loss from torchtune's training bars (`epoch|step|Loss: x: ...`)."""
    curve: dict[int, float] = {}
    for match in TRAIN_BAR_LOSS.finditer(text):
        step, value = match["step"], _number(match["loss"])
        if value is not None:
            curve[int(step)] = value
    return curve

"""Bounded input (issue 23): huge designs, alias bombs and runaway factor products are refused fast and short.

Before the fix (the probe's numbers, local machine): a 2 KB design whose YAML aliases expand to
10^9 values took a minute, 3-5 GiB and printed an 827 MB error; 10^6 runs hung past 5 minutes;
10^5 runs were refused after 160 s; a 50 MB design was accepted. Each case below must be refused
in well under a second with a message that names the file or the factors and stays short.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tasks.core._errors import DesignError
from tasks.model._design_file import MAX_DESIGN_BYTES, load_design, parse_design, read_design
from tasks.planning._expand import MAX_RUNS_ENV, count_runs, expand_design, run_multipliers
from tasks.planning._planner import build_plan
from tests.support.fakesite import DATE, design

FAST_S = 0.5
SHORT = 600  # characters


def _refused(call, *args) -> tuple[str, float]:
    started = time.perf_counter()
    with pytest.raises(DesignError) as info:
        call(*args)
    return str(info.value), time.perf_counter() - started


def _alias_bomb(levels: int = 9) -> str:
    """~1 KB of YAML whose aliases expand to 10^levels values (each level repeats the one above 10 times)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "name: bomb\n" + "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    text = _alias_bomb()
    assert len(text) < 2048
    message, spent = _refused(read_design, text)
    assert spent < FAST_S and len(message) < SHORT and "aliases" in message
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    message, spent = _refused(load_design, path)
    assert spent < FAST_S and str(path) in message and len(message) < SHORT


def test_ordinary_anchors_are_still_allowed(tmp_path: Path) -> None:
    data = design(tmp_path)
    text = yaml.safe_dump(data) + "defaults: &d {a: 1}\n"
    with pytest.raises(DesignError) as info:  # refused for the unknown key, not for its anchor
        read_design(text)
    assert "unknown field" in str(info.value) and "aliases" not in str(info.value)


def test_a_design_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\nquestion: " + "x" * (MAX_DESIGN_BYTES + 1) + "\n")
    message, spent = _refused(load_design, path)
    assert spent < FAST_S and str(path) in message and "limit" in message and len(message) < SHORT
    message, _ = _refused(read_design, path.read_text())
    assert "limit" in message and len(message) < SHORT


@pytest.mark.parametrize("ranks, rates", [(100, 500), (1000, 500)], ids=["1e5-runs", "1e6-runs"])
def test_a_runaway_run_count_is_refused_before_runs_are_built(tmp_path: Path, ranks: int, rates: int) -> None:
    data = design(tmp_path, factors={"lora_rank": list(range(1, ranks + 1)),
                                     "learning_rate": [1e-5 * (i + 1) for i in range(rates)]})
    parsed = parse_design(data, base=tmp_path)
    assert count_runs(parsed) == 2 * ranks * rates + 2
    message, spent = _refused(build_plan, parsed, DATE)
    assert spent < FAST_S, spent
    assert len(message) < SHORT and f"{2 * ranks * rates + 2:,} runs" in message
    assert "2 models x" in message and f"{ranks:,} factors.lora_rank" in message and "factors.learning_rate" in message


def test_the_maximum_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_design(design(tmp_path), base=tmp_path)  # 2 models x 2 ranks + 2 controls
    assert run_multipliers(parsed) == [("models", 2), ("factors.lora_rank", 2)]
    assert len(expand_design(parsed)) == 6
    monkeypatch.setenv(MAX_RUNS_ENV, "5")
    message, _ = _refused(expand_design, parsed)
    assert "6 runs (2 models x 2 factors.lora_rank + 2 controls) is over the maximum of 5 runs" in message


def test_replicates_multiply_the_run_count_before_runs_are_built(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_design(design(tmp_path, replicates=3), base=tmp_path)  # 2 x 2 x 3 + 2 controls
    assert count_runs(parsed) == 14 == len(expand_design(parsed))
    monkeypatch.setenv(MAX_RUNS_ENV, "13")
    message, _ = _refused(expand_design, parsed)
    assert "14 runs (2 models x 2 factors.lora_rank x 3 replicates + 2 controls)" in message

"""Names, task names, factor labels and cluster values match in full: a trailing newline is refused (issue 23).

Before the fix `re.match` with `$` let `"exp\\n"` through (`$` matches before a final newline):
a run-group folder named with a newline, job scripts failing `bash -n`, or a setup traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.core._errors import DesignError
from tasks.model._cluster import ClusterSettings
from tasks.model._design_file import parse_design
from tasks.planning._expand import expand_design
from tests.support.fakesite import design


def _name(d: dict[str, Any]) -> None:
    d["name"] = "exp\n"


def _task(d: dict[str, Any]) -> None:
    d["evaluation"]["tasks"][0]["name"] = "cap\n"


def _label(d: dict[str, Any]) -> None:
    d["factors"] = {"lora_rank": {"r4\n": 4, "r8": 8}}


@pytest.mark.parametrize("change", [_name, _task, _label], ids=["name", "task", "label"])
def test_a_trailing_newline_is_refused(change: Any, tmp_path: Path) -> None:
    data = design(tmp_path)
    change(data)
    with pytest.raises(DesignError) as info:
        expand_design(parse_design(data, base=tmp_path))
    assert "\\n" in str(info.value)  # the value is quoted, newline visible


@pytest.mark.parametrize("field, value", [("partition", "gpu\n"), ("time_limit", "04:00:00\n"),
                                          ("notify_block", "slack-webhook/lab\n"), ("account", "lab\n")])
def test_cluster_values_with_a_trailing_newline_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError):
        ClusterSettings(**{field: value})

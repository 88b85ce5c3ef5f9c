"""A YAML value that YAML turned into another type is explained, with the fix (quote it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.core._errors import DesignError
from tasks.model._cluster import cluster_settings
from tasks.model._design_file import parse_design
from tests.support.fakesite import design


def test_an_unquoted_clock_time_is_explained(tmp_path: Path) -> None:
    text = "eval_time_limit: 1:30:00\nqos: yes\naccount: 2024\n"
    cluster = yaml.safe_load(text)
    assert cluster == {"eval_time_limit": 5400, "qos": True, "account": 2024}  # what PyYAML does
    data = design(tmp_path, cluster=cluster)
    with pytest.raises(DesignError) as error:
        cluster_settings(parse_design(data, base=tmp_path))
    problems = {p.field: p.message for p in error.value.problems}
    assert "read as 5400 seconds" in problems["cluster.eval_time_limit"]
    assert 'quote it: "1:30:00"' in problems["cluster.eval_time_limit"]
    assert "boolean true" in problems["cluster.qos"] and "quote it" in problems["cluster.qos"]
    assert "the number 2024; quote it" in problems["cluster.account"]  # not a time: no clock reading


def test_a_design_field_read_as_a_number_is_explained(tmp_path: Path) -> None:
    data = design(tmp_path, question=yaml.safe_load("q: 2024")["q"])
    with pytest.raises(DesignError) as error:
        parse_design(data, base=tmp_path)
    [problem] = [p for p in error.value.problems if p.field == "question"]
    assert "YAML read this unquoted value as the number 2024" in problem.message

"""The README and docs/ as a newcomer reads them.

Every design shown is a valid design, every relative link and image resolves to a file of the
repository, and the README stays short.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tasks.model._cluster import ClusterSettings
from tasks.model._design_file import parse_design

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _designs() -> list[tuple[str, str]]:
    """(page, yaml text) of every YAML block that is a whole design (it has `name:` and `models:`)."""
    found = []
    for page in PAGES:
        for block in _YAML_BLOCK.findall(page.read_text()):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and {"name", "models"} <= data.keys():
                found.append((page.name, block))
    return found


def test_the_docs_show_designs() -> None:
    assert {page for page, _ in _designs()} >= {"README.md", "design.md"}


@pytest.mark.parametrize(("page", "block"), _designs(), ids=lambda v: v if v.endswith(".md") else "")
def test_every_design_shown_is_valid(page: str, block: str) -> None:
    design = parse_design(yaml.safe_load(block), source=page, base=ROOT)
    assert design.models


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    missing = [target for target in _LINK.findall(page.read_text())
               if "://" not in target and not (page.parent / target).exists()]
    assert missing == [], f"{page.name} links to files that do not exist: {missing}"


def test_the_readme_is_read_in_five_minutes() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def cluster_fields_table() -> str:
    """The cluster fields as docs/gpu-clusters.md shows them: name, default, description (from the model)."""
    defaults = ClusterSettings().model_dump(mode="json")
    rows = ["| field | default | what it sets |", "|---|---|---|"]
    for name, info in ClusterSettings.model_fields.items():
        value = defaults[name]
        shown = "—" if value in (None, [], {}) else f"`{value if isinstance(value, str) else json.dumps(value)}`"
        description = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {shown} | {description} |")
    return "\n".join(rows) + "\n"


def test_the_cluster_fields_table_is_the_models() -> None:
    """Doc and code defaults cannot drift: regenerate with `python -m tests.docs.test_docs`."""
    assert cluster_fields_table() in (ROOT / "docs" / "gpu-clusters.md").read_text()


if __name__ == "__main__":  # print the table to paste into docs/gpu-clusters.md
    print(cluster_fields_table(), end="")

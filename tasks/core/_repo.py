"""Where sweepflow's own files are: the clone's root and its `templates/` folder.

Reads and writes nothing. Generated job scripts run `python -m tasks...` from this root, and
torchtune configs name recipes under it, so every module asks here rather than counting parents.
In a checkout the root is the clone and the templates are `templates/`; in an installed wheel
the root is the site-packages folder holding `tasks/`, and the templates ship as
`sweepflow/templates/` (pyproject.toml maps the folder there).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def templates_dir(root: Path = REPO_ROOT) -> Path:
    """`<root>/templates` in a checkout, else the wheel's `<root>/sweepflow/templates`."""
    checkout = root / "templates"
    return checkout if checkout.is_dir() else root / "sweepflow" / "templates"


TEMPLATES_DIR = templates_dir()

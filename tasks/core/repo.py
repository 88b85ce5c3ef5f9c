"""Where sweepflow's own files are: the clone's root and its `templates/` folder.

Reads and writes nothing. Generated job scripts run `python -m tasks...` from this root, and
torchtune configs name recipes under it, so every module asks here rather than counting parents.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT / "templates"

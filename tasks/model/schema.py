"""The design's JSON schema: `python -m tasks.model.schema` writes schema/experiment_design.schema.json.

Reads: the `ExperimentDesign` model. Writes: the schema file (or, with `--check`, nothing:
exits 1 when the committed file is stale). Editors validate and complete design YAML with
it (e.g. a `# yaml-language-server: $schema=...` comment at the top of a design).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tasks.core._repo import REPO_ROOT
from tasks.model._design import ExperimentDesign

SCHEMA_PATH = REPO_ROOT / "schema" / "experiment_design.schema.json"


def design_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of `ExperimentDesign`."""
    schema = ExperimentDesign.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "experiment_design.schema.json", **schema}


def schema_text() -> str:
    """The schema file's text: indented JSON with a final newline."""
    return json.dumps(design_schema(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema file, or with `--check` exit 1 when the committed one is stale."""
    argv = sys.argv[1:] if argv is None else argv
    text = schema_text()
    if "--check" in argv:
        if not SCHEMA_PATH.is_file() or SCHEMA_PATH.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA_PATH} is stale: run `python -m tasks.model.schema`", file=sys.stderr)
            return 1
        print(f"{SCHEMA_PATH} is up to date")
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

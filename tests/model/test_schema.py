"""The committed JSON schema matches the design model, and the seed example satisfies it."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from tasks.model.schema import SCHEMA_PATH, schema_text
from tests.support.paths import REPO_DIR

ROOT = REPO_DIR


def test_committed_schema_is_current():
    assert SCHEMA_PATH.is_file(), "schema/experiment_design.schema.json is missing: run `python -m tasks.model.schema`"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "schema/experiment_design.schema.json is stale: run `python -m tasks.model.schema` and commit it"
    )


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_seed_example_validates():
    design = yaml.safe_load((ROOT / "examples" / "seed_2x2" / "design.yaml").read_text(encoding="utf-8"))
    errors = sorted(_validator().iter_errors(design), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "change",
    [
        {"models": []},
        {"tpyo": 1},
        {"training": {"epochs": 0}},
    ],
)
def test_schema_rejects_bad_designs(change):
    design = yaml.safe_load((ROOT / "examples" / "seed_2x2" / "design.yaml").read_text(encoding="utf-8"))
    design.update(change)
    assert list(_validator().iter_errors(design))

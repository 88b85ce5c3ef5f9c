"""setup-experiment's domain: every generated file of a run group, written idempotently.

Layer 5 (imports everything below it, never `execution`). `files` says which files a group
has, `materialize` writes them keeping the researcher's edits, `experiment` does both;
`fidelity` proves, before any job, that evaluation prompts are the tokens training saw;
`site_check` runs one short job per resource shape of a plan before the sweep (check-site).
"""

from tasks.setup._experiment import (
    RenderedSetup,
    SetupReport,
    check_rendered_fidelity,
    render_setup,
    set_up_group,
    tree,
    validate_rendered_configs,
    write_setup,
)
from tasks.setup._fidelity import FidelityCheck, FidelityError
from tasks.setup._files import GeneratedFile, experiment_files, finetune_files
from tasks.setup._materialize import FileChange, materialize
from tasks.setup._site_check import recent_pass, run_site_check, site_shapes

__all__ = [
    "FidelityCheck",
    "FidelityError",
    "FileChange",
    "GeneratedFile",
    "RenderedSetup",
    "SetupReport",
    "check_rendered_fidelity",
    "experiment_files",
    "finetune_files",
    "materialize",
    "recent_pass",
    "render_setup",
    "run_site_check",
    "set_up_group",
    "site_shapes",
    "tree",
    "validate_rendered_configs",
    "write_setup",
]

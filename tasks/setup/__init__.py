"""setup-experiment's domain: every generated file of a run group, written idempotently.

Layer 5 (imports everything below it, never `execution`). `files` says which files a group
has, `materialize` writes them keeping the researcher's edits, `experiment` does both;
`fidelity` proves, before any job, that evaluation prompts are the tokens training saw.
"""

from tasks.setup.experiment import (
    RenderedSetup,
    SetupReport,
    check_rendered_fidelity,
    render_setup,
    set_up_group,
    tree,
    validate_rendered_configs,
    write_setup,
)
from tasks.setup.fidelity import FidelityCheck, FidelityError
from tasks.setup.files import GeneratedFile, experiment_files, finetune_files
from tasks.setup.materialize import FileChange, materialize

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
    "render_setup",
    "set_up_group",
    "tree",
    "validate_rendered_configs",
    "write_setup",
]

"""The torchtune seam: model registry, config rendering and validation, retry overrides, log reading.

Layer 3 (imports `core`, `model`, `backends`). Nothing else of sweepflow's knows torchtune's config keys,
component paths or log formats.
"""

from tasks.training._config import recipe_for, render_finetune_config, validate_config
from tasks.training._overrides import apply_overrides, overrides_from_status, resumable_epoch
from tasks.training._prior_logs import PriorRun, PriorScan, parse_log, scan_prior_runs
from tasks.training._registry import REGISTRY, ModelSpec, known_models, lookup

__all__ = [
    "REGISTRY",
    "ModelSpec",
    "PriorRun",
    "PriorScan",
    "apply_overrides",
    "known_models",
    "lookup",
    "overrides_from_status",
    "parse_log",
    "recipe_for",
    "render_finetune_config",
    "resumable_epoch",
    "scan_prior_runs",
    "validate_config",
]

"""sweepflow's torchtune LoRA recipes (subclasses of torchtune 0.6.1's stock recipes).

Reads: torchtune's installed stock recipe files. Writes: nothing on import.

Why this package is not called `recipes`: torchtune installs its own recipes as a top-level
`recipes` directory in site-packages whose `__init__.py` raises on import, and `tune run`
appends the working directory *after* site-packages on `sys.path`. A repository-level
`recipes/` package would therefore be shadowed (or would shadow torchtune's). A distinct
name avoids both problems.

Run a recipe with `tune run`, which turns a *relative* file path into a module name
(`sweepflow_recipes/x.py` -> `sweepflow_recipes.x`; `./x.py` or absolute paths do not work),
so the repository root must be importable (PYTHONPATH):

    cd RUN_DIR
    PYTHONPATH=REPO_ROOT tune run sweepflow_recipes/lora_finetune_single_device.py --config finetune.yaml
    PYTHONPATH=REPO_ROOT tune run --nnodes 1 --nproc_per_node 4 \
        sweepflow_recipes/lora_finetune_distributed_val.py --config finetune.yaml

`python -m sweepflow_recipes.lora_finetune_single_device --config finetune.yaml` works too.
"""

RECIPES = (
    "lora_finetune_single_device",
    "lora_finetune_single_device_val",
    "lora_finetune_distributed",
    "lora_finetune_distributed_val",
)

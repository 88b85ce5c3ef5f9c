"""Job backends: SLURM (`slurm.py`) and a local subprocess runner (`local.py`), one interface."""

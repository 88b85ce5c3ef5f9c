"""sweepflow's domain logic as plain typed functions, one package per stage, layered one way.

    core -> model -> backends -> training, evaluation -> planning, results -> setup -> execution

A package imports only packages to its left (tests/test_layers.py checks it). Flows in
`flows/` call each package's public surface (its `__init__`) through thin Prefect tasks.
"""

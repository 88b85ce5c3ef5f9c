"""A plan figure's kind (tasks/model/_plan.py `Figure`): typed when planned, inferred for older plans."""

from __future__ import annotations

import pytest

from tasks.model._plan import Figure
from tasks.planning._formulas import DEFAULT, DESIGN, PILOT, default_figure, design_figure, measured_figure


@pytest.mark.parametrize(
    ("made", "kind", "by_pilot"),
    [
        (default_figure(2.8), "default", False),
        (design_figure(8), "design", False),
        (design_figure(1.0, " (unpacked); tokenized: 40 samples"), "design", False),
        (measured_figure(4.35, "prior log /logs/slurm-1.out"), "measured", False),
        (measured_figure(0.79, "scaled from Llama-3.2-1B-Instruct prior log /logs/slurm-1.out", False), "scaled", False),
        (measured_figure(4.35, "prior log /p/slurm-2.out", by_pilot=True), "measured", True),
        (measured_figure(0.79, "scaled from M prior log /p/slurm-2.out", False, True), "scaled", True),
        (measured_figure(3.0, "prior evaluations: 2 job(s) of M on cap in g", by_pilot=True), "measured", True),
        (Figure(value=2.38, source="computed: merged model: 1.24B parameters", kind="computed"), "computed", False),
    ],
)
def test_an_older_plans_figure_reads_back_with_the_kind_it_was_made_with(made: Figure, kind: str,
                                                                         by_pilot: bool) -> None:
    """experiment.yaml written before `kind` has value and source only: the kind read back is the one planned."""
    assert (made.kind, made.by_pilot) == (kind, by_pilot)
    older = Figure.model_validate({"value": made.value, "source": made.source})
    assert older == made


def test_the_source_texts_the_legacy_reader_knows_are_the_planners() -> None:
    """The legacy reader spells the planner's source prefixes itself (the model layer is below planning)."""
    assert Figure.model_validate({"value": 1, "source": DEFAULT}).kind == "default"
    assert Figure.model_validate({"value": 1, "source": DESIGN}).kind == "design"
    assert Figure.model_validate({"value": 1, "source": f"{PILOT} prior log x"}).by_pilot


def test_a_derived_figure_keeps_its_source_and_kind() -> None:
    speed = measured_figure(0.5, "scaled from M prior log /l", False, True)
    minutes = speed.but(12.0)
    assert (minutes.value, minutes.source, minutes.kind, minutes.by_pilot) == (12.0, speed.source, "scaled", True)

"""The import rules of docs/architecture.md, checked on the source (every import, also local ones).

- `tasks/` packages are layered one way: a module imports only its own package and packages of
  a lower layer (siblings on one layer, such as `training` and `evaluation`, not each other).
- Flows import the public surface of a package (`tasks.<package>`, never a module inside it),
  `blocks`, and the shared helper modules `flows/_*.py`; no flow imports another flow module,
  except the parent `run_experiment`, which runs the stages. A stage run by other flows as a
  subflow (launch-runs, setup-experiment, pilot-runs) is defined in a helper module
  (`flows/_launch.py` ...) that its own flow module re-exports with its docs and command line.
- Helper modules sit below the flows: they import no flow module.
- A package's surface is its `__init__`: every other module is private (underscored), except the
  commands generated job scripts run and the modules generated configs name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "core": 0,
    "model": 1,
    "backends": 2,
    "training": 3,
    "evaluation": 3,
    "planning": 4,
    "results": 4,
    "setup": 5,
    "execution": 6,
}


def imported_modules(path: Path, with_names: bool = True) -> list[str]:
    """Every absolute module `path` imports; with `with_names`, `from x import y` also gives `x.y`."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if with_names:
                names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tasks" and parts[1] in LAYERS else None


def layer_violations() -> list[str]:
    found = []
    for path in sorted((ROOT / "tasks").rglob("*.py")):
        own = path.relative_to(ROOT / "tasks").parts[0]
        if own not in LAYERS:
            continue  # tasks/__init__.py
        for module in imported_modules(path):
            other = _package(module)
            if other is None or other == own:
                continue
            if LAYERS[other] >= LAYERS[own]:
                found.append(f"{path.relative_to(ROOT)} imports {module} ({other} is not below {own})")
    return found


PARENT_FLOW = "run_experiment"  # the one flow that runs the others, importing their flow modules


def _flow_modules_imported(path: Path) -> set[str]:
    """The flow modules (flows/<name>.py, not the helpers flows/_*.py) that `path` imports."""
    names = set()
    for module in imported_modules(path, with_names=False):
        parts = module.split(".")
        if parts[0] == "flows" and len(parts) == 2 and not parts[1].startswith("_") and parts[1] != path.stem:
            names.add(parts[1])
    return names


def flow_violations(folder: Path = ROOT / "flows") -> list[str]:
    found = []
    for path in sorted(folder.glob("*.py")):
        shown = path.relative_to(folder.parent)
        for module in imported_modules(path, with_names=False):
            parts = module.split(".")
            if parts[0] == "tasks" and len(parts) > 2:
                found.append(f"{shown} imports {module}: use the package's surface tasks.{parts[1]}")
        imported = _flow_modules_imported(path)
        if imported and path.stem != PARENT_FLOW:
            what = "a helper module" if path.stem.startswith("_") else "a flow"
            found.append(f"{shown} is {what} but imports the flow module(s) {', '.join(sorted(imported))}")
    return found


def test_tasks_layers_point_one_way() -> None:
    assert layer_violations() == []


def test_flows_use_package_surfaces_and_no_other_flow() -> None:
    assert flow_violations() == []


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_every_package_has_a_public_surface(package: str) -> None:
    init = ROOT / "tasks" / package / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{init} says what the package is for"
    exported = [n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)]
    assert exported, f"{init} lists its public names in __all__"


def test_the_flow_rule_sees_each_violation(tmp_path: Path) -> None:
    """A helper importing a flow, a flow importing another (even locally) and a module inside a package are reported."""
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "_common.py").write_text("from flows.plan_runs import plan_runs\n")
    (folder / "plan_runs.py").write_text("def f():\n    from flows.setup_experiment import setup_experiment\n")
    (folder / "run_experiment.py").write_text("from flows.plan_runs import plan_runs\nfrom flows._setup import s\n")
    (folder / "setup_experiment.py").write_text("from flows._setup import setup_experiment\nimport tasks.model._plan\n")
    assert flow_violations(folder) == [
        "flows/_common.py is a helper module but imports the flow module(s) plan_runs",
        "flows/plan_runs.py is a flow but imports the flow module(s) setup_experiment",
        "flows/setup_experiment.py imports tasks.model._plan: use the package's surface tasks.model",
    ]


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rule itself can fail: an upward import in a module is reported."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tasks.execution import submit_pending\n")
    assert "tasks.execution" in imported_modules(module)
    assert LAYERS["execution"] > LAYERS["model"]


# Modules that stay public: commands (`python -m ...`, run by generated job scripts or `make schema`)
# and modules whose names generated files carry (tiny_llama's builders are torchtune `_component_`
# paths); a run group written today must still run after an upgrade.
PUBLIC_MODULES = {
    "tasks/backends/local.py",
    "tasks/core/preflight.py",
    "tasks/core/site_probe.py",
    "tasks/evaluation/best_epoch.py",
    "tasks/evaluation/merge_adapter.py",
    "tasks/evaluation/model_view.py",
    "tasks/evaluation/run_tasks.py",
    "tasks/model/schema.py",
    "tasks/training/tiny_llama.py",
}


def test_implementation_modules_are_private() -> None:
    """A package's surface is its __init__ (inspect-ai's pattern): every other module is underscored."""
    public = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tasks").rglob("*.py")
              if not p.name.startswith("_") and (p.parent / "__init__.py").exists()}
    assert public == PUBLIC_MODULES

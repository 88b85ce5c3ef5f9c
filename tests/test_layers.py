"""The import rules of docs/architecture.md, checked on the source (every import, also local ones).

- `tasks/` packages are layered one way: a module imports only its own package and packages of
  a lower layer (siblings on one layer, such as `training` and `evaluation`, not each other).
- Flows import the public surface of a package (`tasks.<package>`, never a module inside it),
  `blocks`, and `flows._common`; no flow takes helpers from another flow. A flow may run
  another stage's flow as a subflow (`from flows.setup_experiment import setup_experiment`),
  and the parent `run_experiment` runs them all.
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


def flow_violations() -> list[str]:
    found = []
    for path in sorted((ROOT / "flows").glob("*.py")):
        for module in imported_modules(path, with_names=False):
            parts = module.split(".")
            if parts[0] == "tasks" and len(parts) > 2:
                found.append(f"{path.relative_to(ROOT)} imports {module}: use the package's surface tasks.{parts[1]}")
        for module in imported_modules(path):
            parts = module.split(".")
            # private modules (flows/_common.py, flows/_advance.py, ...) are helpers shared by flows
            if parts[0] == "flows" and len(parts) == 3 and not parts[1].startswith("_") and parts[1] != path.stem:
                if parts[2] != parts[1]:  # only the flow function itself, to run it as a subflow
                    found.append(f"{path.relative_to(ROOT)} takes {parts[2]} from the flow module flows.{parts[1]}")
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


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rule itself can fail: an upward import in a module is reported."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tasks.execution import submit_pending\n")
    assert "tasks.execution" in imported_modules(module)
    assert LAYERS["execution"] > LAYERS["model"]

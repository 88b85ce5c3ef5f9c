"""Read a design: a YAML file, YAML text or a mapping -> a validated `ExperimentDesign`.

Reads: the design file. Writes: nothing. Every problem is reported at once, each naming its
field (`training.lora_rank`, `evaluation.tasks[1].script`) and the file, in words a researcher
reads without pydantic's vocabulary; relative paths resolve against the design file's folder.
`problems_from_validation` does the same for the other files sweepflow validates.

Bounded: a design file or text over `MAX_DESIGN_BYTES` is refused before it is parsed, and one
whose YAML aliases (`&a` ... `*a`) would expand to more than `MAX_YAML_VALUES` values is refused
after parsing its node graph and before building anything (the count is taken over the graph,
shared nodes counted once per use, without expanding it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from tasks.core._errors import DesignError, Problem
from tasks.model._design import ExperimentDesign, PathsSpec, cross_field_problems
from tasks.model._yaml_types import explain_yaml_type

# A flow's `design` parameter: the design as its model (the Prefect UI renders a form from its
# JSON schema, each field with its description), or the path of a design file (YAML text is
# accepted too). A plain mapping is accepted but left out of the schema: the form's values
# arrive as one, and `read_design` validates it with researcher-readable messages.
# The UI shows the two as tabs, named by their titles ("Experiment design", "Design file").
DesignInput = ExperimentDesign | Annotated[str, Field(title="Design file")] | SkipJsonSchema[dict[str, Any]]

MAX_DESIGN_BYTES = 256 * 1024  # a design is a few KB; larger is a mistake (or an attack)
MAX_YAML_VALUES = 100_000  # scalars + collections after alias expansion
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BRANCH_TAG = re.compile(
    r"^(?:(?:list|dict|set|tuple|frozenset|literal|function-\w+|is-instance|nullable)\[.*\]"
    r"|constrained-\w+|str|int|float|bool|bytes|none|any|[A-Z]\w*Spec)$"
)
# what a union field accepts, said once instead of one complaint per branch
_UNION_HINTS = {
    "factors.": "must be a list of levels, or a mapping {label: value}",
    "evaluation.epochs": "must be last, all, best, or a list of epoch indices such as [0, 1]",
    "training.batch_size": "must be 'auto', a positive integer, or {model name: positive integer}",
    "paths": "must be a mapping (models_dir:, output_dir:, ...) or the name of a saved sweepflow-paths block",
    "cluster": "must be the name of a saved slurm-cluster block, or a mapping of its fields",
}
_TYPE_MISMATCH = {"list_type", "dict_type", "literal_error", "model_type", "model_attributes_type",
                  "string_type", "int_type", "int_parsing", "float_type", "float_parsing", "bool_type",
                  "bool_parsing", "none_required", "is_instance_of"}


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _BRANCH_TAG.match(str(item)):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "design"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field (check its spelling)"
    if kind == "missing":
        return "required field is missing"
    if kind == "too_short" and err.get("ctx", {}).get("min_length") == 1:
        return "is empty; give at least one entry"
    return str(err["msg"]).removeprefix("Value error, ")


def problems_from_validation(error: ValidationError, source: str) -> list[Problem]:
    """Turn pydantic's errors into one researcher-readable problem per field."""
    entries: list[tuple[str, str, bool]] = []  # field, message, is a union branch's type mismatch
    for err in error.errors():
        loc = tuple(err["loc"])
        if not loc:
            # model-level checks write "field: message" lines (see cross_field_problems)
            for line in _message(err).splitlines():
                field, sep, message = line.partition(": ")
                entries.append((field, message, False) if sep else ("design", line, False))
            continue
        branch_level = bool(_BRANCH_TAG.match(str(loc[-1])))
        message = explain_yaml_type(err) or _message(err)  # "1:30:00 was read as 5400 seconds; quote it"
        entries.append((_loc(loc), message, branch_level and err["type"] in _TYPE_MISMATCH))
    seen: dict[str, Problem] = {}
    fields = [f for f, _, _ in entries]
    for field, message, mismatch in entries:
        if mismatch:
            # a union reports one error per branch: prefer a branch that matched the type but
            # failed a constraint (or a deeper field), else say what the field accepts
            if any(f != field and f.startswith((field + ".", field + "[")) for f in fields):
                continue
            if any(f == field and not m for f, _, m in entries):
                continue
            hint = next(
                (h for k, h in _UNION_HINTS.items() if field == k or (k.endswith(".") and field.startswith(k))),
                None,
            )
            message = hint or message
        seen.setdefault(field, Problem(field=field, message=message, path=source))
    return list(seen.values())


def _resolve(path: Path, base: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def resolve_paths(design: ExperimentDesign, base: Path) -> ExperimentDesign:
    """Relative paths in the design resolve against the design file's folder."""
    dataset = design.dataset.model_copy(update={"path": _resolve(design.dataset.path, base)})
    tasks = [
        t.model_copy(
            update={
                "script": _resolve(t.script, base) if t.script else None,
                "dataset": _resolve(t.dataset, base) if t.dataset else None,
            }
        )
        for t in design.evaluation.tasks
    ]
    evaluation = design.evaluation.model_copy(update={"tasks": tasks})
    factors = dict(design.factors)
    if "dataset" in factors:
        levels = factors["dataset"]
        if isinstance(levels, dict):
            factors["dataset"] = {k: str(_resolve(Path(str(v)), base)) for k, v in levels.items()}
        else:
            factors["dataset"] = [str(_resolve(Path(str(v)), base)) for v in levels]
    paths = design.paths
    if isinstance(paths, PathsSpec):
        paths = paths.model_copy(
            update={
                "models_dir": _resolve(paths.models_dir, base),
                "output_dir": _resolve(paths.output_dir, base),
                "prior_runs": [_resolve(p, base) for p in paths.prior_runs],
                "scratch_dir": _resolve(paths.scratch_dir, base) if paths.scratch_dir else None,
            }
        )
    return design.model_copy(update={"dataset": dataset, "evaluation": evaluation, "factors": factors, "paths": paths})


def _too_large(size: int, source: str) -> DesignError:
    return DesignError([Problem(field="design", path=source, message=(
        f"is {size:,} bytes, over the {MAX_DESIGN_BYTES:,}-byte limit for a design: is this the right file?"))])


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Values the node graph stands for once every alias is expanded (stops counting past `limit`)."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # children before parents, each node once (aliases share node objects)
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if done or isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = -1
            order.append(node)
            continue
        stack.append((node, True))
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        stack.extend((child, False) for child in children if id(child) not in sizes)
    for node in order:
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(child)] for child in children))
    return sizes[id(root)]


def load_yaml_bounded(text: str, source: str) -> Any:
    """`yaml.safe_load(text)`, refusing (DesignError) text over the size limit or aliases that expand too far."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_DESIGN_BYTES:
        raise _too_large(size, source)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_VALUES) > MAX_YAML_VALUES:
            raise DesignError([Problem(field="design", path=source, message=(
                f"its YAML aliases (*name) would expand to over {MAX_YAML_VALUES:,} values; "
                "write the values out instead of repeating anchors"))])
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_design(data: Any, source: str = "design", base: Path | None = None) -> ExperimentDesign:
    """Validate a parsed design mapping; raise DesignError naming every bad field."""
    if data is None:
        raise DesignError([Problem(
            field="design", message="is empty; expected a YAML mapping of fields (name:, models:, ...)", path=source
        )])
    if not isinstance(data, dict):
        raise DesignError([Problem(
            field="design", message="must be a YAML mapping of fields (name:, models:, ...)", path=source
        )])
    try:
        design = ExperimentDesign.model_validate(data)
    except ValidationError as error:
        problems = problems_from_validation(error, source)
        # field errors stop pydantic before the cross-field checks; run them on the raw data
        known = {(p.field, p.message) for p in problems}
        problems += [
            Problem(field=f, message=m, path=source) for f, m in cross_field_problems(data) if (f, m) not in known
        ]
        raise DesignError(problems) from None
    return resolve_paths(design, base or Path.cwd())


def load_design(path: str | Path) -> ExperimentDesign:
    """Read and validate a design YAML file."""
    path = Path(path).expanduser()
    source = str(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_DESIGN_BYTES:
            raise _too_large(path.stat().st_size, source)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DesignError([Problem(field="design", message="file not found", path=source)]) from None
    except IsADirectoryError:
        raise DesignError([Problem(field="design", message="is a folder, not a YAML file", path=source)]) from None
    except UnicodeDecodeError as error:
        raise DesignError([Problem(
            field="design",
            message=f"is not UTF-8 text (a binary file?): byte {error.start} cannot be decoded",
            path=source,
        )]) from None
    except OSError as error:
        raise DesignError([Problem(
            field="design", message=f"cannot be read: {error.strerror or error}", path=source
        )]) from None
    try:
        data = load_yaml_bounded(text, source)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise DesignError([Problem(
            field="design", message=f"is not valid YAML{at}: {getattr(error, 'problem', error)}", path=source
        )]) from None
    return parse_design(data, source=source, base=path.resolve().parent)


def read_design(design: DesignInput | Path) -> ExperimentDesign:
    """A file path, YAML text, a mapping or a design -> a validated design (relative paths resolved).

    Relative paths of a file's design resolve against the file's folder; of text, a mapping or
    a design (the Prefect UI's form), against the working directory.
    """
    if isinstance(design, ExperimentDesign):
        return resolve_paths(design, Path.cwd())
    if isinstance(design, dict):
        return parse_design(design, source="design parameter", base=Path.cwd())
    text = str(design)
    if "\n" in text:
        try:
            data = load_yaml_bounded(text, "design parameter")
        except yaml.YAMLError as error:
            raise DesignError([Problem(
                field="design", message=f"is not valid YAML: {error}", path="design parameter"
            )]) from None
        return parse_design(data, source="design parameter", base=Path.cwd())
    return load_design(text)

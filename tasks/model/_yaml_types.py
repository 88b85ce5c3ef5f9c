"""Say what YAML did when it read an unquoted value as another type than the field wants.

Reads and writes nothing. YAML 1.1 (PyYAML) reads `1:30:00` as the sexagesimal number 5400,
`yes`/`no`/`on`/`off` as booleans and `2024` or `1e-4`-like text as numbers, so a field that wants a
string gets pydantic's bare "Input should be a valid string". `explain_yaml_type` turns such an
error into what happened and the fix (quote it).
"""

from __future__ import annotations

from typing import Any


def _clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def explain_yaml_type(error: Any) -> str | None:
    """A message for a pydantic error whose input YAML turned into a number or boolean; None otherwise."""
    if not isinstance(error, dict) or error.get("type") != "string_type":
        return None
    value = error.get("input")
    if isinstance(value, bool):
        return (f"YAML read this unquoted value as the boolean {str(value).lower()} (yes/no/on/off/true/false "
                "are booleans in YAML); quote it to give text, e.g. \"yes\"")
    field = str((error.get("loc") or ("",))[-1])
    if isinstance(value, int) and value >= 60 and "time" in field:  # a time limit written H:MM:SS
        return (f"YAML read this unquoted value as the number {value}: a time written as {_clock(value)} without "
                f"quotes is read as {value} seconds (H:MM:SS in base 60); quote it: \"{_clock(value)}\"")
    if isinstance(value, int | float):
        return f"YAML read this unquoted value as the number {value}; quote it to give text, e.g. \"{value}\""
    return None

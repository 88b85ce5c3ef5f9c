"""Jinja2 rendering shared by every generated file, and the number formats documents share.

Reads: templates under `<repo>/templates/`. Writes: nothing (callers write the text).
`render_template(name, **context)` is the one way sweepflow produces a generated file: undefined
variables are errors (StrictUndefined), block tags leave no blank lines (trim/lstrip_blocks).
Number formatting filters (minutes, hours, GiB, sizes, figure sources) live here so every
document says the same numbers the same way.
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tasks.core._repo import TEMPLATES_DIR


def format_number(value: Any) -> str:
    """3e-4 -> '3e-4', 0.05 -> '0.05', 64 -> '64' (short, and stable across runs)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)  # not a number: the level check reports it, naming the level
    if number.is_integer() and abs(number) < 1e6:
        return str(int(number))
    if abs(number) < 1e-2:
        mantissa, exponent = f"{number:.6e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{number:.6g}"


# ---------------------------------------------------------------- number formatting filters


def fmt_num(value: float | int) -> str:
    """4.34 -> '4.34', 2.80 -> '2.8', 16.0 -> '16' (at most 2 decimals; tiny values keep 2 digits)."""
    number = float(value)
    if number.is_integer():
        return str(int(number))
    if abs(number) < 0.01:
        return format_number(float(f"{number:.2g}"))
    return f"{number:.2f}".rstrip("0").rstrip(".")


def fmt_minutes(minutes: float) -> str:
    """'~20 min' below two hours, '~2.5 h' above; '<1 min' for tiny jobs."""
    if minutes < 1:
        return "<1 min"
    if minutes < 120:
        return f"~{int(minutes + 0.5)} min"  # half up, not banker's rounding
    return f"~{minutes / 60:.1f} h"


def fmt_hours(hours: float) -> str:
    """GPU hours and the like: 2 decimals below 10, 1 above."""
    return f"{hours:.2f}" if hours < 10 else f"{hours:.1f}"


def fmt_gib(gib: float) -> str:
    """GiB with 2 decimals below 10, 1 above: '2.30 GiB', '14.7 GiB'."""
    return f"{gib:.2f} GiB" if gib < 10 else f"{gib:.1f} GiB"


def fmt_size(size_bytes: int) -> str:
    """Human file size in binary units: '655.4 KiB', '2.30 GiB'."""
    size = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return fmt_gib(size)


def fmt_source(figure: Any) -> str:
    """A plan figure's source, in parentheses (the `source` filter)."""
    return f"(source: {figure.source})"


def plural(count: int, word: str, suffix: str = "s") -> str:
    """'1 run', '3 runs': the count and the word, with `suffix` unless the count is 1."""
    return f"{count} {word}" if count == 1 else f"{count} {word}{suffix}"


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


_NEEDS_DOUBLE_QUOTES = re.compile(r"[$`\\]")


def shell_quote(value: Any) -> str:
    """One shell word that bash reads back as exactly `str(value)` (the templates' `sh` filter).

    Like `shlex.quote` (plain words stay as they are, others are single-quoted), except that text
    with `$`, a backquote or a backslash is double-quoted with those escaped: the same word for
    bash, and no ShellCheck notes (SC2016 "expressions don't expand in single quotes", SC1003).
    A leading `~` is escaped outside the quotes (SC2088), so it is never expanded either.
    """
    text = str(value)
    if text.startswith("~"):
        return "\\~" + (shell_quote(text[1:]) if text[1:] else "")
    if not _NEEDS_DOUBLE_QUOTES.search(text):
        return shlex.quote(text)
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(
        num=fmt_num,
        minutes=fmt_minutes,
        hours=fmt_hours,
        gib=fmt_gib,
        size=fmt_size,
        source=fmt_source,
        plural=plural,
        cell=md_cell,
        sh=shell_quote,
        yesno=lambda value: "yes" if value else "no",
    )
    return env


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared Jinja2 environment (templates are cached by it)."""
    return _environment()


def render_template(name: str, **context: Any) -> str:
    """Render `templates/<name>`; any variable the template uses but is not given is an error."""
    return environment().get_template(name).render(**context)

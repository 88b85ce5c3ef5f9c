"""Make a capitalization dataset: a lowercase word in, the same word capitalized out.

Reads: nothing. Writes: one JSON file `{"train": [...], "validation": [...], "test": [...]}`,
each a list of `{"input": "qwert", "output": "Qwert"}`, split 80/10/10; by default named
`words_{L}L_80P_{N}.json` (L letters per word, N rows). Words are distinct strings of random
lowercase letters from a fixed-seed generator, so the same arguments give byte-identical
files on every machine.

    python -m examples.capitalization.make_dataset OUT_DIR_OR_FILE --word-len 5 --num-words 2000 [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
from pathlib import Path

DEFAULT_SEED = 0
TRAIN_PERCENT = 80


def default_filename(word_len: int, num_words: int) -> str:
    return f"words_{word_len}L_{TRAIN_PERCENT}P_{num_words}.json"


def make_words(word_len: int, num_words: int, seed: int = DEFAULT_SEED) -> list[str]:
    """`num_words` distinct random lowercase words of `word_len` letters, in generation order."""
    if word_len < 1:
        raise ValueError("word_len must be at least 1")
    if num_words < 10:
        raise ValueError("num_words must be at least 10 (the 80/10/10 split needs a row in each part)")
    if num_words > 26**word_len:
        raise ValueError(f"only {26 ** word_len} distinct {word_len}-letter words exist; asked for {num_words}")
    rng = random.Random(seed)
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < num_words:
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(word_len))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def make_dataset(word_len: int = 5, num_words: int = 2000, seed: int = DEFAULT_SEED) -> dict[str, list[dict[str, str]]]:
    """The dataset as a mapping of split -> rows (80 % train, 10 % validation, the rest test)."""
    rows = [{"input": w, "output": w.capitalize()} for w in make_words(word_len, num_words, seed)]
    n_train = num_words * TRAIN_PERCENT // 100
    n_val = num_words // 10
    return {
        "train": rows[:n_train],
        "validation": rows[n_train : n_train + n_val],
        "test": rows[n_train + n_val :],
    }


def to_json(data: dict[str, list[dict[str, str]]]) -> str:
    """JSON with one row per line: readable, diff-friendly, and still one JSON object."""
    parts = []
    for split, rows in data.items():
        body = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in rows)
        parts.append(f" {json.dumps(split)}: [\n{body}\n ]")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_dataset(
    out: str | Path, word_len: int = 5, num_words: int = 2000, seed: int = DEFAULT_SEED
) -> Path:
    """Write the dataset. `out` is a folder (the default file name is used) or a `.json` path.

    Returns the file's path. Rewriting identical content leaves the file untouched.
    """
    out = Path(out).expanduser()
    path = out if out.suffix == ".json" else out / default_filename(word_len, num_words)
    text = to_json(make_dataset(word_len, num_words, seed))
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output folder (file named words_{L}L_80P_{N}.json) or a .json file path")
    parser.add_argument("--word-len", type=int, default=5, help="letters per word (default 5)")
    parser.add_argument("--num-words", type=int, default=2000, help="rows in all splits together (default 2000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        path = write_dataset(args.out, args.word_len, args.num_words, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

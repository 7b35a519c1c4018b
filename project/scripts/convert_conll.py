"""Convert CoNLL-2003 (train.txt, valid.txt, test.txt in one folder) to corpus/{train,dev,test}.spacy.

    python scripts/convert_conll.py CONLL_DIR corpus --n-sents 1 --train-limit 0 --test-limit 0

Reads the files as `spacy project assets` downloads them (`token POS chunk NER` lines with
-DOCSTART- lines between documents) or with the NER tag in the second column (`token TAG ...`):
the tag column is the last one that holds only O / B-X / I-X tags. A missing folder or file, or
a malformed line, is one line on stderr (exit code 1), not a traceback.
"""
import argparse
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

SPLITS = (("train.txt", "train.spacy", "train_limit"), ("valid.txt", "dev.spacy", None), ("test.txt", "test.spacy", "test_limit"))
SAMPLE_LINES = 500


class ConllError(Exception):
    """A problem with the CoNLL files; the message is the whole report."""


def _is_tag(value: str) -> bool:
    return value == "O" or (value[:2] in ("B-", "I-") and len(value) > 2)


def _token_lines(path: Path) -> List[List[str]]:
    lines = []
    with path.open(encoding="utf8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] != "-DOCSTART-":
                lines.append(parts)
                if len(lines) >= SAMPLE_LINES:
                    break
    return lines


def tag_column(path: Path) -> int:
    """The index of the NER tag column: the last column whose values are all O / B-X / I-X."""
    lines = _token_lines(path)
    if not lines:
        raise ConllError(f"{path}: no token lines (the file is empty or has only -DOCSTART- lines)")
    width = min(len(parts) for parts in lines)
    for column in range(width - 1, 0, -1):
        if all(_is_tag(parts[column]) for parts in lines):
            return column
    raise ConllError(
        f"{path}: no column of NER tags (O, B-X, I-X) in its first {len(lines)} token lines; "
        "expected 'token POS chunk NER' (CoNLL-2003) or 'token NER' lines"
    )


def _two_columns(path: Path, column: int, folder: Path) -> Path:
    """A copy of ``path`` with only ``token TAG`` (and -DOCSTART-) lines, for spacy_luke.corpora.conll."""
    out = folder / path.name
    with path.open(encoding="utf8") as src, out.open("w", encoding="utf8") as dst:
        for lineno, line in enumerate(src, 1):
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                dst.write(line if parts else "\n")
            elif len(parts) <= column:
                raise ConllError(f"{path}:{lineno}: expected {column + 1} columns, got {line.strip()!r}")
            else:
                dst.write(f"{parts[0]} {parts[column]}\n")
    return out


def check_folder(conll_dir: Path) -> None:
    get = (
        "get CoNLL-2003 with `python -m spacy project assets` (into assets/conll2003), "
        "or pass --vars.conll_dir FOLDER with a folder that holds them"
    )
    names = [name for name, _, _ in SPLITS]
    if not conll_dir.is_dir():
        raise ConllError(f"CoNLL-2003 folder {conll_dir} not found (expected {', '.join(names)} in it): {get}")
    missing = [name for name in names if not (conll_dir / name).is_file()]
    if missing:
        raise ConllError(f"CoNLL-2003 folder {conll_dir} lacks {', '.join(missing)}: {get}")


def convert(conll_dir: Path, output_dir: Path, *, n_sents: int = 1, train_limit: int = 0, test_limit: int = 0) -> None:
    from spacy_luke.corpora.conll import convert_conll

    check_folder(conll_dir)
    limits = {"train_limit": train_limit, "test_limit": test_limit}
    with tempfile.TemporaryDirectory() as tmp:
        for name, output, limit_name in SPLITS:
            source = conll_dir / name
            column = tag_column(source)
            if column != 1:
                source = _two_columns(source, column, Path(tmp))
            try:
                n = convert_conll(source, output_dir / output, n_sents=n_sents, limit=limits.get(limit_name, 0) if limit_name else 0)
            except ValueError as err:
                raise ConllError(str(err).replace(str(source), str(conll_dir / name))) from None
            print(f"{conll_dir / name} -> {output_dir / output}: {n} docs")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conll_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--n-sents", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=0)
    parser.add_argument("--test-limit", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        convert(args.conll_dir, args.output_dir, n_sents=args.n_sents, train_limit=args.train_limit, test_limit=args.test_limit)
    except (ConllError, OSError, ValueError) as err:  # UnicodeDecodeError included
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Alias files and the normalized text that mentions, titles and aliases are matched by.

- Alias file (UTF-8 TSV): ``alias<TAB>title<TAB>count`` per line; titles are unprefixed (also
  for mLUKE), counts are positive numbers (e.g. Wikipedia anchor counts). Read by the linker's
  ``spacy-luke.TitleCandidates.v1`` and by ``build-kb`` (``spacy_luke.pipeline._linker.kb_builder``).
- Mapping file (UTF-8 TSV): ``kb_id<TAB>title`` per line, for ``spacy-luke.KBCandidates.v1``.

Malformed lines are an ``AliasFileError`` naming the file and the line.
"""
from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Tuple, Union


class AliasFileError(ValueError):
    """An alias or mapping file that cannot be read: the message names the file, the line and the fix."""


class _CharMap(dict):
    """``str.translate`` table, filled on first sight of each character (so translate stays in C).

    Letters, digits and combining marks (of any script) stay; whitespace, underscores and dashes
    become spaces; everything else (punctuation, symbols, control characters) is removed.
    """

    def __missing__(self, code: int):
        char = chr(code)
        category = unicodedata.category(char)
        if char == "_" or char.isspace() or category == "Pd":
            value = " "
        elif category[0] in "LNM":
            value = char
        else:
            value = None
        self[code] = value
        return value


_CHAR_MAP = _CharMap()
_PARENTHETICAL = re.compile(r"\s*\([^()]*\)\s*$")
_QUALIFIER = re.compile(r"\s*,[^,]*$")


def normalize_mention(text: str) -> str:
    """The form titles, aliases and mentions are matched by.

    Unicode NFKC, casefolded; underscores, dashes and whitespace become one space; other
    punctuation and symbols are removed (letters, digits and marks of any script stay);
    no leading or trailing space. ``"Apple_Inc."`` -> ``"apple inc"``, ``"Jean-Paul"`` -> ``"jean paul"``.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_CHAR_MAP).split())


def title_keys(title: str) -> List[str]:
    """The normalized forms a title is found under: itself, without a trailing ``"(...)"``, and
    without a trailing ``", qualifier"`` (``"Paris, Texas"`` -> ``["paris texas", "paris"]``)."""
    keys = [normalize_mention(title)]
    base = _PARENTHETICAL.sub("", title) if title.endswith(")") else title
    if base != title:
        keys.append(normalize_mention(base))
    if "," in base:
        keys.append(normalize_mention(_QUALIFIER.sub("", base)))
    return [key for i, key in enumerate(keys) if key and key not in keys[:i]]


def _tsv_rows(path: Path, n_fields: int, expected: str) -> Iterator[Tuple[int, List[str]]]:
    """(line number, fields) of each non-blank line, or AliasFileError naming the file and line."""
    try:
        with path.open(encoding="utf8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) != n_fields or not all(field.strip() for field in fields):
                    raise AliasFileError(
                        f"{path}:{lineno}: expected {expected} (tab-separated, none empty), got {line[:80]!r}."
                    )
                yield lineno, fields
    except UnicodeDecodeError as err:
        raise AliasFileError(f"{path}: not UTF-8 text ({err}); convert it to UTF-8.") from None


def read_alias_table(path: Union[str, Path]) -> Dict[str, Dict[str, float]]:
    """An alias file: ``alias<TAB>title<TAB>count`` lines -> ``{alias: {title: count}}``.

    Titles are unprefixed (``"Tokyo"``, also for mLUKE); counts are positive numbers (how often the
    alias links to the title, e.g. Wikipedia anchor counts). Repeated (alias, title) lines add up;
    blank lines are skipped; the order of first appearance is kept.
    """
    path = Path(path)
    table: Dict[str, Dict[str, float]] = {}
    for lineno, (alias, title, count_text) in _tsv_rows(path, 3, "alias<TAB>title<TAB>count"):
        try:
            count = float(count_text)
        except ValueError:
            count = math.nan
        if not (count > 0 and math.isfinite(count)):
            raise AliasFileError(f"{path}:{lineno}: the count {count_text!r} is not a positive number; write how often {alias!r} links to {title!r}.")
        titles = table.setdefault(alias, {})
        titles[title] = titles.get(title, 0.0) + count
    return table


def read_kb_mapping(path: Union[str, Path]) -> Dict[str, str]:
    """A mapping file: ``kb_id<TAB>title`` lines -> ``{kb_id: title}`` (titles unprefixed)."""
    path = Path(path)
    mapping: Dict[str, str] = {}
    for lineno, (kb_id, title) in _tsv_rows(path, 2, "kb_id<TAB>title"):
        if mapping.get(kb_id, title) != title:
            raise AliasFileError(f"{path}:{lineno}: {kb_id!r} is mapped twice ({mapping[kb_id]!r} and {title!r}); keep one line per KB id.")
        mapping[kb_id] = title
    return mapping



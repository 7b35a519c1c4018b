"""The title files of ``convert-encoder --entities``: a title per line, or an alias file."""
from __future__ import annotations

import pytest

from spacy_luke.convert.entity_titles import read_entity_titles
from support.cli import fails


def write(tmp_path, text, name="titles.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    return path


def test_titles_one_per_line_or_from_an_alias_file(tmp_path):
    assert read_entity_titles(write(tmp_path, "\ufeffParis\n\nJaguar Cars\nParis\n")) == ["Paris", "Jaguar Cars"]
    aliases = write(tmp_path, "Jaguar\tJaguar Cars\t3\nJaguar\tJaguar (animal)\t1\nCity of Light\tParis\t2\n", "a.tsv")
    assert read_entity_titles(aliases) == ["Jaguar Cars", "Jaguar (animal)", "Paris"]


@pytest.mark.parametrize("text, message", [
    ("Paris\nJaguar\tJaguar Cars\n", r"titles.txt:2: expected a title, or alias<TAB>title<TAB>count; got 2"),
    ("Jaguar\t \t3\n", r"titles.txt:1: the title is empty"),
    ("\n  \n", r"holds no title"),
])
def test_bad_title_files(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_entity_titles(write(tmp_path, text))


def test_bad_title_file_on_the_command_line(capsys, tmp_path):
    line = fails(capsys, "convert-encoder", tmp_path, tmp_path / "out", "--entities", write(tmp_path, "a\tb\n"))
    assert "titles.txt:1: expected a title" in line
    assert "no such input file" in fails(capsys, "convert-encoder", tmp_path, tmp_path / "out", "--entities", tmp_path / "none.txt")

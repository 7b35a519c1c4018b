"""The command line never shows a traceback: every failure is one stderr line naming the file, exit code 2.

Stream failures (closed stdin / stdout, binary stdin) run `python -m spacy_luke` in a subprocess;
the rest call `cli.main` in-process, which costs no torch import.
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from spacy_luke import cli
from spacy_luke.cli import ner as ner_command
from support.cli import fails, one_line_error


def shell(command: str, *args, stdin=None) -> subprocess.CompletedProcess:
    """``command`` in bash, with $0 the Python executable and $1.. ``args`` (for `<&-` / `>&-`)."""
    return subprocess.run(["bash", "-c", command, sys.executable, *map(str, args)], input=stdin, capture_output=True, timeout=60)


def test_closed_stdin(ner_checkpoint):
    result = shell('"$0" -m spacy_luke ner --pretrained "$1" - <&-', ner_checkpoint)
    assert result.returncode == 2
    one_line_error(result.stderr.decode(), "<stdin> is closed", "input files")


def test_closed_stdout(ner_checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text("Tokyo is big.\n", encoding="utf8")
    result = shell('"$0" -m spacy_luke ner --pretrained "$1" "$2" >&-', ner_checkpoint, tmp_path / "in.txt")
    assert result.returncode == 2
    one_line_error(result.stderr.decode(), "<stdout> is closed", "--output")


def test_binary_stdin_fails_up_front_with_the_line(ner_checkpoint):
    result = shell('"$0" -m spacy_luke ner --pretrained "$1" -', ner_checkpoint, stdin=b"Tokyo is big.\n\x89PNG\xff\x00\n")
    assert result.returncode == 2 and result.stdout == b""
    one_line_error(result.stderr.decode(), "<stdin>:2:", "not UTF-8", "0x89")


def test_undecodable_file_names_file_and_line(capsys, ner_checkpoint, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Tokyo is big.\nZürich too.\n".encode("latin1"))
    line = fails(capsys, "ner", "--pretrained", ner_checkpoint, path)
    assert f"{path}:2: not UTF-8 text (byte 0xfc at column 2)" in line and "iconv" in line


def test_directory_input_is_not_reported_missing(capsys, ner_checkpoint, tmp_path):
    for argv in (["ner", "--pretrained", ner_checkpoint, tmp_path], ["convert-conll", tmp_path, tmp_path / "out.spacy"]):
        line = fails(capsys, *argv)
        assert f"{tmp_path} is a directory" in line and "not found" not in line
    assert "no such input file" in fails(capsys, "ner", "--pretrained", ner_checkpoint, tmp_path / "nowhere.txt")


@pytest.mark.parametrize(
    "content,line,expected",
    [
        ("EU B-ORG\nrejects O\n\nGerman X-MISC\n", 4, "'X-MISC'"),
        ("EU B-ORG\nrejects B\n", 2, "'B'"),
        ("EU B-\n", 1, "'B-'"),
        ("EU B-ORG\nrejects\n", 2, "expected 'token TAG ...'"),
        (b"EU B-ORG\nZ\xfcrich B-LOC\n", 2, "not UTF-8"),
    ],
)
def test_conll_errors_name_file_and_line(capsys, tmp_path, content, line, expected):
    path = tmp_path / "train.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf8"))
    assert expected in fails(capsys, "convert-conll", path, tmp_path / "train.spacy").split(f"{path}:{line}:", 1)[1]
    assert not (tmp_path / "train.spacy").exists()


def test_empty_input_is_a_failure(capsys, monkeypatch, ner_checkpoint, tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf8")
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf8")
    line = fails(capsys, "ner", "--pretrained", ner_checkpoint, tmp_path / "empty.txt", tmp_path / "blank.txt")
    assert f"no texts in {tmp_path / 'empty.txt'}, {tmp_path / 'blank.txt'}" in line
    fails(capsys, "ner", "--whole-file", "--pretrained", ner_checkpoint, tmp_path / "blank.txt")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\n")))
    assert "no texts in <stdin>" in fails(capsys, "ner", "--pretrained", ner_checkpoint)
    (tmp_path / "docstart.txt").write_text("-DOCSTART- O\n\n", encoding="utf8")
    assert "docstart.txt: no sentences" in fails(capsys, "convert-conll", tmp_path / "docstart.txt", tmp_path / "o.spacy")


def test_convert_encoder_names_the_overwrite_flag(capsys, tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "luke").mkdir()
    (tmp_path / "luke" / "config.json").write_text("{}", encoding="utf8")
    line = fails(capsys, "convert-encoder", tmp_path / "bert", tmp_path / "luke")
    assert f"{tmp_path / 'luke'} is not empty" in line and "--overwrite" in line and "overwrite=True" not in line


def test_every_argument_has_help():
    parser = cli.make_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"ner", "convert-conll", "convert-encoder", "build-kb", "annotate", "serve", "export-onnx", "train-pruner"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help text"
        assert "SPACY_LUKE_DEBUG=1" in sub.format_help()
    assert "--debug" in parser.format_help() and "exits" in parser.format_help()


def test_progress_bar_ends_at_the_total(capsys, ner_checkpoint, tmp_path):
    (tmp_path / "in.txt").write_text("Tokyo is in Japan.\n" * 20, encoding="utf8")
    assert cli.main(["ner", "--pretrained", str(ner_checkpoint), str(tmp_path / "in.txt")]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 20
    assert "20/20" in captured.err.split("\r")[-1], captured.err  # the bar's final state


def test_usage_debug_and_unexpected_errors(capsys, monkeypatch, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["ner"])
    assert exit_.value.code == 2
    one_line_error(capsys.readouterr().err, "--pretrained", "--help")
    with pytest.raises(SystemExit):
        cli.main(["ner", "--pretrained", "x", "--batch-size", "0"])
    one_line_error(capsys.readouterr().err, "--batch-size", ">= 1")
    with pytest.raises(cli.CliError, match="is a directory"):
        cli.main(["ner", "--debug", "--pretrained", "x", str(tmp_path)])
    monkeypatch.setenv("SPACY_LUKE_DEBUG", "1")
    with pytest.raises(cli.CliError):
        cli.main(["ner", "--pretrained", "x", str(tmp_path)])
    monkeypatch.delenv("SPACY_LUKE_DEBUG")

    def broken(inputs, by_line):
        raise KeyError("surprise")

    monkeypatch.setattr(ner_command, "read_texts", broken)
    assert "unexpected KeyError" in fails(capsys, "ner", "--pretrained", "x", "-")

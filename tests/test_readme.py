"""The README's promises name the tests that back them: every test name it cites exists."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_test_the_readme_names_exists():
    cited = set(re.findall(r"`(test_\w+)`", (REPO / "README.md").read_text(encoding="utf8")))
    defined = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                defined.add(node.name)
    assert len(cited) > 20
    assert sorted(cited - defined) == []

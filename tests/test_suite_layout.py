"""The test suite's own rules: its folders mirror the package, no test module imports another one
(shared helpers live in ``tests/support/``, fixtures in ``conftest.py``), basenames are unique, and
each session fixture is built once per run."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "spacy_luke"
NOT_MIRRORS = {"support", "data", "__pycache__"}


def suite_modules():
    return sorted(path for path in TESTS.rglob("test_*.py") if not NOT_MIRRORS & set(path.relative_to(TESTS).parts))


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_every_test_folder_mirrors_a_subpackage():
    """tests/a/b/ stands for spacy_luke/a/b/ (or its private spacy_luke/a/_b/)."""
    strays = []
    for folder in sorted(p for p in TESTS.rglob("*") if p.is_dir()):
        parts = folder.relative_to(TESTS).parts
        if NOT_MIRRORS & set(parts):
            continue
        target = PACKAGE
        for part in parts:
            target = target / part if (target / part / "__init__.py").is_file() else target / f"_{part}"
        if not (target / "__init__.py").is_file():
            strays.append(str(folder.relative_to(TESTS)))
    assert strays == [], f"test folders with no spacy_luke subpackage of that name: {strays}"


def test_no_test_module_imports_another_or_conftest():
    names = {path.stem for path in suite_modules()} | {"conftest"}
    found = [
        f"{path.relative_to(TESTS)} imports {module}"
        for path in suite_modules() + sorted((TESTS / "support").glob("*.py"))
        for module in imported_modules(path)
        if module in names
    ]
    assert found == [], "move what is shared into tests/support/ (helpers) or a conftest.py (fixtures)"


def test_test_module_basenames_are_unique():
    seen = {}
    for path in suite_modules():
        seen.setdefault(path.name, []).append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}


def test_each_session_fixture_is_built_once_per_run(request, fixture_builds):
    names, builds = fixture_builds
    assert len(names) >= 15
    for name in names:
        request.getfixturevalue(name)
        request.getfixturevalue(name)
    assert {name: builds[name] for name in names} == {name: 1 for name in names}

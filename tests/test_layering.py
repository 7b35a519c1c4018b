"""The layers import only downwards (docs: ARCHITECTURE.md, "Layers, from the bottom up").

- ``model/`` (pure PyTorch) imports nothing from ``tokenization/``, ``convert/``, ``pipeline/``
  or ``layers/``;
- ``tokenization/`` imports nothing from ``convert/``, ``pipeline/`` or ``layers/``;
- ``convert/`` (encoder -> LUKE, above model/ and tokenization/) imports nothing from
  ``pipeline/`` or ``layers/``;
- the shared data modules below both (``hub``, ``entity_vocab``, ``checkpoint_files``) import
  no subpackage;
- importing ``spacy_luke.pipeline`` imports no torch of ours.

Imports are read from the source with ``ast``: relative ones resolved, those inside functions
(lazy imports) included.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import pytest

PACKAGE = "spacy_luke"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
SHARED_MODULES = ("hub", "entity_vocab", "checkpoint_files")
SUBPACKAGES = ("model", "tokenization", "convert", "pipeline", "layers", "cli")


def module_name(path: Path) -> str:
    """The dotted name of a module file under ``ROOT`` (``spacy_luke.model.checkpoint``)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, is_package: bool) -> Iterator[Tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``source``, at any depth.

    ``from X import y`` yields ``X`` and ``X.y`` (``y`` may be a submodule); relative imports
    are resolved against ``module`` (``is_package``: the source is the package's ``__init__``).
    Literal ``importlib.import_module("...")`` calls count too.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def forbidden_imports(files: Sequence[Path], forbidden: Sequence[str]) -> List[str]:
    """``"file:line (module) imports name"`` for every import of a ``forbidden`` package in ``files``."""
    prefixes = [f"{PACKAGE}.{name}" for name in forbidden]
    found = []
    for path in files:
        module = module_name(path)
        for line, name in imported_names(path.read_text(encoding="utf8"), module, path.name == "__init__.py"):
            if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
                found.append(f"{path.relative_to(ROOT.parent)}:{line} ({module}) imports {name}")
    return sorted(set(found))


def package_files(name: str) -> List[Path]:
    files = sorted((ROOT / name).rglob("*.py"))
    assert files, f"no modules under {ROOT / name}"
    return files


def test_the_import_walk_resolves_relative_and_lazy_imports():
    """The walk itself: relative imports at any level, inside functions, ``from .. import x``."""
    source = textwrap.dedent(
        """
        import json
        from .config import LukeConfig
        from .. import tokenization
        def load():
            from ..pipeline.base import LukePipe
            import spacy_luke.layers.luke_model
            return importlib.import_module("spacy_luke.convert")
        """
    )
    names = [name for _, name in imported_names(source, "spacy_luke.model.pretrained", is_package=False)]
    for expected in (
        "json",
        "spacy_luke.model.config.LukeConfig",
        "spacy_luke.tokenization",
        "spacy_luke.pipeline.base",
        "spacy_luke.layers.luke_model",
        "spacy_luke.convert",
    ):
        assert expected in names, (expected, names)
    package_init = [name for _, name in imported_names("from .heads import X", "spacy_luke.model", is_package=True)]
    assert "spacy_luke.model.heads" in package_init


@pytest.mark.parametrize(
    "layer,forbidden",
    [
        ("model", ("tokenization", "convert", "pipeline", "layers", "cli")),
        ("tokenization", ("convert", "pipeline", "layers", "cli")),
        ("convert", ("pipeline", "layers", "cli")),
        ("layers", ("pipeline", "convert", "cli")),
    ],
)
def test_layers_import_only_downwards(layer, forbidden):
    found = forbidden_imports(package_files(layer), forbidden)
    assert not found, f"{layer}/ must not import {', '.join(f + '/' for f in forbidden)}:\n" + "\n".join(found)


def test_shared_modules_import_no_subpackage():
    """hub.py, entity_vocab.py and checkpoint_files.py sit below model/ and tokenization/."""
    files = [ROOT / f"{name}.py" for name in SHARED_MODULES]
    found = forbidden_imports(files, SUBPACKAGES)
    assert not found, "shared modules must not import the layers above them:\n" + "\n".join(found)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_pipeline_import_loads_no_model_code():
    """``import spacy_luke.pipeline`` loads neither the torch model nor the conversion."""
    out = _run(
        "import sys, spacy_luke.pipeline\n"
        "print(sorted(m for m in sys.modules if m.startswith(('spacy_luke.model', 'spacy_luke.convert'))))"
    )
    assert out.strip() == "[]", out


def test_pipeline_import_needs_no_torch():
    """With torch unimportable, the pipes still import and construct (weights load later).

    ``'torch' not in sys.modules`` cannot be asserted after ``import spacy_luke.pipeline``:
    spaCy imports thinc, whose ``thinc.compat`` imports torch whenever it is installed. Blocking
    torch shows that none of our own import-time code needs it.
    """
    out = _run(
        "import sys\n"
        "sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
        # spaCy loads every package's factory entry points: hide spacy-transformers' (it imports
        # torch itself), so that the test is about our code only.
        "import catalogue, importlib.metadata as md\n"
        "eps = catalogue.AVAILABLE_ENTRY_POINTS\n"
        "flat = [e for g in eps.values() for e in g] if isinstance(eps, dict) else list(eps)\n"
        "catalogue.AVAILABLE_ENTRY_POINTS = md.EntryPoints(e for e in flat if not e.value.startswith('spacy_transformers'))\n"
        "import spacy, spacy_luke.pipeline\n"
        "nlp = spacy.blank('en')\n"
        "for name in ('luke_ner', 'luke_entity_typer', 'luke_relation_extractor', 'luke_entity_vectors'):\n"
        "    nlp.add_pipe(name)\n"
        "print('ok')"
    )
    assert out.strip() == "ok"

"""The layers import only downwards (docs: ARCHITECTURE.md, "Layers, from the bottom up").

- every subpackage lies on one level of :data:`LEVELS`, bottom up: ``sources/`` (what a name
  refers to, hub downloads, checkpoint file names, the entity vocabulary) < ``model/`` (pure
  PyTorch), ``tokenization/`` < ``convert/`` (encoder -> LUKE) < ``export/`` < ``layers/`` (thinc)
  < ``pipeline/`` < ``annotate/``, ``corpora/``, ``trf/`` < ``serve/``, ``ray/`` < ``cli/``; each imports only
  the levels below its own, never a package of its own level or above (the root ``spacy_luke``
  package, which every import runs first, may be imported from anywhere; it and ``__main__`` sit on top);
- ``corpora/`` (training data readers) imports no layer of the model or the pipes;
- ``cli/`` is the top: nothing but ``__main__`` imports it;
- no module of the package is part of an import cycle;
- inside ``model/``, the inference views (``views/``) sit above the model they view: nothing else
  of ``model/`` imports them;
- importing ``spacy_luke.pipeline`` imports no torch of ours;
- inside ``tokenization/``, its subsystems import only downwards (``subwords/`` <- ``hf_tokenizers/``
  <- ``doc_inputs/``), and every module lies in one of them.

Imports are read from the source with ``ast``: relative ones resolved, those inside functions
(lazy imports) included.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import deque
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Set, Tuple

import pytest


PACKAGE = "spacy_luke"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
#: The subpackages, bottom up: each may import those of the levels below its own, nothing else of ours.
LEVELS = (
    ("sources",), ("model", "tokenization"), ("convert",), ("export",), ("layers",), ("pipeline",), ("annotate", "corpora", "trf"),
    ("serve", "ray"), ("cli",),
)
SUBPACKAGES = tuple(name for level in LEVELS for name in level)
# tokenization/'s subsystems, bottom up: each may import those before it, never those after it.
TOKENIZATION_LAYERS = ("subwords", "hf_tokenizers", "doc_inputs")


def module_name(path: Path, root: Path = ROOT.parent) -> str:
    """The dotted name of a module file under ``root`` (``spacy_luke.model.checkpoint``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
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


def import_graph(prefix: str, root: Path = ROOT.parent) -> Dict[str, Set[str]]:
    """The modules of package ``prefix`` (dotted, found under ``root``) -> the modules of it they import.

    An imported name stands for the longest module it names (``a.b.C`` -> ``a.b``), and importing
    a module also runs each package on the way to it that the importer is not inside
    (``x.y`` importing ``x.z.m`` runs ``x.z``). ``from P import m`` in a module of package ``P``
    only loads ``m``: ``P`` is already being imported, so that is not an edge back to ``P``
    (``from P import name`` is). A package is the module of its ``__init__.py``; a module's
    imports of itself are left out.
    """
    files = {module_name(path, root): path for path in (root / prefix.replace(".", "/")).rglob("*.py")}
    graph: Dict[str, Set[str]] = {module: set() for module in files}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        inside = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1 + is_package)}
        for _, name in imported_names(path.read_text(encoding="utf8"), module, is_package):
            parts = name.split(".")
            target = next((".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in graph), None)
            if target is None or (target == name and target in inside):
                continue
            on_the_way = {".".join(target.split(".")[:k]) for k in range(1, target.count(".") + 1)}
            graph[module].update({target} | {m for m in on_the_way if m in graph and m not in inside})
        graph[module].discard(module)
    return graph


def import_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One shortest cycle ``[a, b, ..., a]`` through each group of modules that import each other.

    The groups are the strongly connected components of ``graph`` with more than one module
    (Tarjan's algorithm, without recursion; a module importing itself is no cycle here).
    """
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return [_shortest_cycle(graph, component) for component in sorted(components)]


def _shortest_cycle(graph: Dict[str, Set[str]], component: List[str]) -> List[str]:
    """A shortest cycle ``[first, ..., first]`` inside ``component`` (breadth first from its first module)."""
    first, members = component[0], set(component)
    before: Dict[str, str] = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node] & members):
            if target == first:
                path = [node]
                while path[-1] != first:
                    path.append(before[path[-1]])
                return path[::-1] + [first]
            if target not in before:
                before[target] = node
                queue.append(target)
    raise AssertionError(f"{component} is not a strongly connected component")


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


def our_top_level_names() -> List[str]:
    """The subpackages and root modules of ``spacy_luke`` (``model``, ``sources``, ``kb_tools``, ...)."""
    return sorted(
        path.stem for path in ROOT.iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__")) or (path / "__init__.py").is_file()
    )


def _subpackage(module: str) -> str:
    """``model`` for ``spacy_luke.model.views.precision``; ``""`` for the root modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__main__" else ""


def upward_imports(graph: Dict[str, Set[str]], levels: Sequence[Sequence[str]]) -> List[str]:
    """``"module imports target"`` for each import of a subpackage that is not on a level below the importer's
    (the root package is no subpackage: importing any module runs it first)."""
    level = {name: rank for rank, names in enumerate(levels) for name in names}
    found = []
    for module, targets in graph.items():
        source = _subpackage(module)
        if not source:  # the root facade and __main__ sit on top
            continue
        for target in targets:
            other = _subpackage(target)
            if other and other != source and level[other] >= level[source]:
                found.append(f"{module} imports {target}")
    return sorted(found)


def test_every_subpackage_lies_on_a_level():
    assert sorted(our_top_level_names()) == sorted(SUBPACKAGES), f"place each subpackage in LEVELS: {our_top_level_names()}"


def test_layers_import_only_downwards():
    found = upward_imports(import_graph(PACKAGE), LEVELS)
    assert not found, "subpackages, bottom up: " + " < ".join(", ".join(level) for level in LEVELS) + ":\n" + "\n".join(found)


def test_the_level_rule_itself():
    graph = {"spacy_luke.a.x": {"spacy_luke.b.y"}, "spacy_luke.b.y": {"spacy_luke.c.z", "spacy_luke.b.w"},
             "spacy_luke.c.z": {"spacy_luke", "spacy_luke.a.x"}, "spacy_luke": {"spacy_luke.c.z"}, "spacy_luke.b.w": set()}
    # b -> c: down; b -> b: inside; c -> the root package: allowed; a -> b: its own level; c -> a: up.
    assert upward_imports(graph, [("c",), ("a", "b")]) == [
        "spacy_luke.a.x imports spacy_luke.b.y", "spacy_luke.c.z imports spacy_luke.a.x"
    ]


def test_model_does_not_import_its_views():
    """model/views/ (precision modes, int8, linear views) builds on the model; the model never reaches up to it."""
    views = f"{PACKAGE}.model.views"
    graph = import_graph(f"{PACKAGE}.model")
    found = sorted(
        f"{module} imports {target}" for module, targets in graph.items()
        if not (module == views or module.startswith(views + "."))
        for target in targets if target == views or target.startswith(views + ".")
    )
    assert not found, "\n".join(found)


def test_corpora_import_no_model_or_pipe_layer():
    found = forbidden_imports(package_files("corpora"), [name for name in SUBPACKAGES if name not in ("sources", "corpora")])
    assert not found, "corpora/ reads data; it must not import the model or the pipes:\n" + "\n".join(found)


def test_nothing_imports_the_command_line():
    """cli/ is the top layer: only ``python -m spacy_luke`` (``__main__``) imports it."""
    files = [path for path in sorted(ROOT.rglob("*.py")) if path.relative_to(ROOT).parts[0] not in ("cli", "__main__.py")]
    found = forbidden_imports(files, ["cli"])
    assert not found, "cli/ is the top layer:\n" + "\n".join(found)


def test_no_import_cycle():
    cycles = import_cycles(import_graph(PACKAGE))
    assert not cycles, f"modules of {PACKAGE} import each other:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_import_graph_and_its_cycles(tmp_path):
    """The graph's edges (packages on the way, ``from P import m`` inside P) and the cycle finder."""
    files = {
        "pkg/__init__.py": "from .low import a\nfrom .up.top import b\n",
        "pkg/low.py": "import json\nfrom .other import c\n",
        "pkg/other.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .low import a\n",
        "pkg/up/__init__.py": "from . import top\n",
        "pkg/up/top.py": "from . import mid\nfrom ..low import a\n",
        "pkg/up/mid.py": "def f():\n    from .. import up\n    from pkg.up import name\n",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source, encoding="utf8")
    graph = import_graph("pkg", root=tmp_path)
    assert graph == {
        "pkg": {"pkg.low", "pkg.up", "pkg.up.top"},
        "pkg.low": {"pkg.other"},
        "pkg.other": {"pkg.low"},
        "pkg.up": {"pkg.up.top"},
        "pkg.up.top": {"pkg.up.mid", "pkg.low"},
        "pkg.up.mid": {"pkg.up"},
    }
    assert import_cycles(graph) == [["pkg.low", "pkg.other", "pkg.low"], ["pkg.up", "pkg.up.top", "pkg.up.mid", "pkg.up"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"b"}, "e": set(), "f": {"a"}}) == [
        ["a", "b", "c", "a"]
    ]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


TOKENIZATION = f"{PACKAGE}.tokenization"


def test_tokenization_subsystems_import_only_downwards():
    """subwords/ <- hf_tokenizers/ <- doc_inputs/; none imports the tokenization/ facade above them."""
    graph = import_graph(TOKENIZATION)

    def layer(module: str) -> int:
        part = module[len(TOKENIZATION) + 1 :].split(".")[0]
        return TOKENIZATION_LAYERS.index(part) if part in TOKENIZATION_LAYERS else len(TOKENIZATION_LAYERS)

    stray = sorted(m for m in graph if m != TOKENIZATION and layer(m) == len(TOKENIZATION_LAYERS))
    assert not stray, f"every module of tokenization/ belongs in one of {TOKENIZATION_LAYERS}: {stray}"
    upwards = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items() if module != TOKENIZATION
        for target in targets if layer(target) > layer(module)
    )
    assert not upwards, f"tokenization/ layers, bottom up: {TOKENIZATION_LAYERS}:\n" + "\n".join(upwards)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.heavy  # a Python subprocess
def test_pipeline_import_loads_no_model_code():
    """``import spacy_luke.pipeline`` loads neither the torch model nor the conversion."""
    out = _run(
        "import sys, spacy_luke.pipeline\n"
        "print(sorted(m for m in sys.modules if m.startswith(('spacy_luke.model', 'spacy_luke.convert'))))"
    )
    assert out.strip() == "[]", out


@pytest.mark.heavy  # a Python subprocess
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

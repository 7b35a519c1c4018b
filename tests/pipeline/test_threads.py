"""One nlp used from several threads at once gives exactly the sequential results."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import spacy
import torch

from spacy_luke.layers import head_layer, padded_batches
from support.ner import PARITY_TEXTS


def four_pipes(ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint, **ner_config):
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4, **ner_config})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.add_pipe("luke_relation_extractor", config={"pretrained": str(relation_checkpoint)})
    nlp.add_pipe("luke_entity_vectors", config={"pretrained": str(encoder_checkpoint)})
    return nlp


def annotations(doc):
    return (
        [(e.start, e.end, e.label_, round(e._.luke_score, 5)) for e in doc.ents],
        [sorted((k, round(v, 5)) for k, v in e._.luke_types.items()) for e in doc.ents],
        [(tuple(r["head"]), tuple(r["tail"]), r["label"], round(r["score"], 5)) for r in doc._.luke_relations],
        [[round(float(x), 4) for x in e._.luke_vector[:4]] for e in doc.ents],
    )


@pytest.mark.heavy  # four pipes, sequential then from a thread pool: 40-70 s
def test_four_pipes_from_a_thread_pool_match_sequential(ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint):
    nlp = four_pipes(ner_checkpoint, typer_checkpoint, relation_checkpoint, encoder_checkpoint)
    texts = PARITY_TEXTS[:40]
    sequential = [annotations(nlp(text)) for text in texts]
    assert sum(len(a[0]) for a in sequential) > 10 and any(a[2] for a in sequential)
    # The checkpoints have dropout 0.1: a train() from another thread would change the results.
    assert nlp.get_pipe("luke_ner").luke_model.config.hidden_dropout_prob > 0
    chunks = [texts[i : i + 5] for i in range(0, 40, 5)]

    def run_chunk(chunk):
        return [annotations(d) for d in nlp.pipe(chunk, batch_size=3)]

    sequential_batched = [run_chunk(chunk) for chunk in chunks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda text: annotations(nlp(text)), texts))
        batched = list(pool.map(run_chunk, chunks))
    assert threaded == sequential
    assert batched == sequential_batched
    assert sequential == [annotations(nlp(text)) for text in texts]


def test_predictions_never_flip_the_modules_mode(ner_checkpoint):
    """Prediction leaves the module in eval mode; a training call does not leave it in train mode."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    nlp("Barack Obama visited Paris.")
    luke = ner.luke_model
    assert not any(m.training for m in luke.modules())
    seen = []
    hook = luke.register_forward_hook(lambda module, args, out: seen.append(module.training))
    from spacy.training import Example

    doc = nlp.make_doc("Barack Obama visited Paris.")
    example = Example.from_dict(doc, {"entities": [(0, 12, "PER"), (21, 26, "LOC")]})
    ner.update([example], sgd=None)
    nlp("Barack Obama visited Paris.")
    hook.remove()
    assert seen and not any(seen)
    assert not any(m.training for m in luke.modules())


def test_training_call_uses_dropout_and_prediction_does_not(ner_checkpoint):
    """Dropout is decided by the call: begin_update trains (outputs vary), predict never does."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    doc = nlp.make_doc("Barack Obama visited Paris in France.")
    scores = [ner.predict([doc])[0].logits for _ in range(2)]
    assert (scores[0] == scores[1]).all()
    (_, padded), = padded_batches(ner.model, *ner.model_input([doc]))
    head = head_layer(ner.model)
    torch.manual_seed(0)
    train_a, _ = head.begin_update(padded)
    train_b, _ = head.begin_update(padded)
    assert abs(train_a - train_b).max() > 1e-4
    predicted = head.predict(padded)
    assert abs(predicted - head.predict(padded)).max() == 0


def test_threads_on_a_fresh_pipe_load_the_weights_once(ner_checkpoint, monkeypatch):
    """The first calls from several threads at once: one thread loads, the others wait and share it."""
    import threading
    import time

    from spacy_luke.pipeline._shared.base import LukePipe

    loads = []
    original = LukePipe._load

    def counting_load(self, checkpoint):
        loads.append(threading.get_ident())
        time.sleep(0.2)  # a slow load: the other threads arrive meanwhile
        return original(self, checkpoint)

    monkeypatch.setattr(LukePipe, "_load", counting_load)
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(nlp, PARITY_TEXTS[:4]))
    assert len(loads) == 1
    expected = [[(e.start, e.end, e.label_) for e in nlp(t).ents] for t in PARITY_TEXTS[:4]]
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == expected

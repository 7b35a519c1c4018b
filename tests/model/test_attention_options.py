"""The attention options: one immutable object per encoder, changed per call by a context variable."""
from __future__ import annotations

import threading

import pytest
import torch

import spacy_luke.model as ours
from support.checkpoints import make_inputs
from spacy_luke.model import unpadded
from spacy_luke.model.attention_options import AttentionOptions, attention_options, resolve

HEAD = "LukeForEntitySpanClassification"


@pytest.fixture
def model_and_inputs(hf_checkpoint):
    folder, reference = hf_checkpoint(HEAD)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    return model, make_inputs(HEAD, reference.config, batch=5, length=12, entities=5, seed=2)


def test_options_are_immutable_and_checked():
    options = AttentionOptions()
    assert (options.impl, options.unpad, options.fused_qkv, options.shared_queries) == ("sdpa", False, False, True)
    with pytest.raises(Exception):
        options.unpad = True  # frozen: replaced as a whole, never flipped
    assert options.replace(unpad=True) == AttentionOptions(unpad=True)
    assert options.replace() is options
    with pytest.raises(ValueError, match="Unknown attention implementation 'flash'"):
        AttentionOptions(impl="flash")
    with pytest.raises(ValueError, match="Unknown attention implementation"):
        with attention_options(impl="flash"):
            pass
    with pytest.raises(TypeError):
        with attention_options(unknown=True):
            pass


def test_context_changes_only_the_call_and_nests():
    base = AttentionOptions(impl="eager")
    assert resolve(base) is base
    with attention_options(unpad=True):
        assert resolve(base) == AttentionOptions(impl="eager", unpad=True)
        with attention_options(impl="sdpa", fused_qkv=True):
            assert resolve(base) == AttentionOptions(impl="sdpa", unpad=True, fused_qkv=True)
        assert resolve(base) == AttentionOptions(impl="eager", unpad=True)
    assert resolve(base) is base


def test_context_is_per_thread():
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other_thread():
        inside.wait()
        seen["other"] = resolve(AttentionOptions())
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with attention_options(unpad=True):
        inside.set()
        done.wait()
        seen["here"] = resolve(AttentionOptions())
    thread.join()
    assert seen == {"other": AttentionOptions(), "here": AttentionOptions(unpad=True)}


def test_model_level_switches_are_backed_by_the_options(model_and_inputs):
    model, _ = model_and_inputs
    encoder = model.luke.encoder
    assert encoder.options == AttentionOptions() and not encoder.unpad
    encoder.unpad = True  # README spelling
    assert encoder.options == AttentionOptions(unpad=True) and encoder.unpad
    model.set_attention_implementation("eager")
    assert encoder.options == AttentionOptions(impl="eager", unpad=True)
    model.set_attention_options(fused_qkv=True, unpad=False)
    assert encoder.options == AttentionOptions(impl="eager", fused_qkv=True)
    with pytest.raises(ValueError, match="Unknown attention implementation"):
        model.set_attention_implementation("flash")
    # No attention module carries a switch of its own any more.
    for layer in encoder.layer:
        for name in ("unpad", "fused_qkv", "impl"):
            assert name not in vars(layer.attention.self)


@pytest.mark.parametrize("changes", [{"unpad": True}, {"impl": "eager"}, {"fused_qkv": True}, {"shared_queries": False}])
def test_context_gives_the_numbers_of_the_model_setting(model_and_inputs, changes):
    model, inputs = model_and_inputs
    with torch.no_grad():
        with attention_options(**changes):
            per_call = model(**inputs).logits
        assert model.luke.encoder.options == AttentionOptions()  # left as it was
        model.set_attention_options(**changes)
        configured = model(**inputs).logits
    assert torch.equal(per_call, configured)


def test_unpad_per_call_runs_the_unpadded_path(model_and_inputs, monkeypatch):
    model, inputs = model_and_inputs
    builds = []
    original = unpadded.UnpaddedLayout.build.__func__

    def spy(cls, *args, **kwargs):
        builds.append(threading.get_ident())
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(unpadded.UnpaddedLayout, "build", classmethod(spy))
    with torch.no_grad():
        padded = model(**inputs).logits
        assert builds == []
        with attention_options(unpad=True):
            got = model(**inputs).logits
        assert len(builds) == 1
        # hidden states asked for: the padded path, whatever the options say
        with attention_options(unpad=True):
            encoder_inputs = {k: v for k, v in inputs.items() if k not in ("entity_start_positions", "entity_end_positions")}
            model.luke(**encoder_inputs, output_hidden_states=True)
        assert len(builds) == 1
    keep = inputs["entity_attention_mask"].bool()
    assert (padded[keep] - got[keep]).abs().max() < 1e-5


def test_threads_with_different_options_at_once(model_and_inputs):
    """One model, calls with different options from several threads: each gets its own numbers."""
    model, inputs = model_and_inputs
    settings = [{}, {"unpad": True}, {"impl": "eager"}, {"unpad": True, "impl": "eager", "shared_queries": False}]
    with torch.no_grad():
        expected = []
        for changes in settings:
            with attention_options(**changes):
                expected.append(model(**inputs).logits)
    results = {}
    barrier = threading.Barrier(len(settings))

    def run(index):
        barrier.wait()
        with torch.no_grad(), attention_options(**settings[index]):
            results[index] = [model(**inputs).logits for _ in range(5)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(settings))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, want in enumerate(expected):
        assert all(torch.equal(got, want) for got in results[index]), settings[index]


def test_pipes_ask_for_unpad_per_call_and_leave_the_model_alone(ner_checkpoint, monkeypatch):
    import spacy

    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint), "max_mention_length": 4})
    builds = []
    original = unpadded.UnpaddedLayout.build.__func__

    def spy(cls, *args, **kwargs):
        builds.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(unpadded.UnpaddedLayout, "build", classmethod(spy))
    nlp("Barack Obama visited Paris in France.")
    assert builds  # the pipe's calls ran unpadded ...
    assert ner.luke_model.luke.encoder.options == AttentionOptions()  # ... without setting it on the model

"""int8 predictions do not depend on the batch: a doc's entities and logits are the same one by one
as in batches (the README's promise), because every activation is quantized per token (its own
scale and zero point, its own outlier entries)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from support.tokenizers import make_sentences
from spacy_luke.model.views.int8 import Int8Linear, int8_kernels_available, quantize_linears
from spacy_luke.model.unpadded import UnpaddedLayout

pytestmark = pytest.mark.skipif(not int8_kernels_available(), reason="no oneDNN int8 kernels in this PyTorch build")

#: The dimension the outlier checkpoint's LayerNorms scale up (as trained BERT-style models have).
OUTLIER_DIM = 3


@pytest.fixture(scope="module")
def outlier_checkpoint(ner_checkpoint, tmp_path_factory):  # noqa: F811
    """The NER checkpoint with one LayerNorm outlier dimension (30x) in every LayerNorm's output,
    so that many tokens of every int8 product have an outlier entry (multiplied in float32)."""
    import transformers

    folder = tmp_path_factory.mktemp("int8-outliers") / "ner-outliers"
    shutil.copytree(ner_checkpoint, folder)
    model = transformers.LukeForEntitySpanClassification.from_pretrained(folder)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight[OUTLIER_DIM] *= 30.0
                module.bias[OUTLIER_DIM] += 2.0
    model.save_pretrained(folder)
    return folder


def _texts():
    """~40 docs of 3 to ~45 words: short sentences and a few of several sentences each."""
    short = [t for t in make_sentences(300, seed=11) if 3 <= len(t.split()) <= 14][:34]
    long = [" ".join(make_sentences(4, seed=20 + i)) for i in range(6)]
    texts = short[:10] + long[:3] + short[10:25] + long[3:] + short[25:]
    assert len(texts) == 40 and len({len(t.split()) for t in texts}) > 15
    return texts


_RUNS = {}


def _runs(folder, precision, batch_sizes=(1, 8, 32), per_token=None, exact_attention=False):
    """For each batch size: each doc's (start, end, label, score) entities and its logits (cached).

    per_token: ``Int8Linear.per_token`` for this run (None: the default).
    exact_attention: attention groups without padding (see :func:`_unpadded_groups`).
    """
    key = (str(folder), precision, batch_sizes, per_token, exact_attention)
    if key not in _RUNS:
        saved, build = Int8Linear.per_token, UnpaddedLayout.build
        Int8Linear.per_token = saved if per_token is None else per_token
        if exact_attention:
            UnpaddedLayout.build = _unpadded_groups(build.__func__)
        try:
            _RUNS[key] = _run(folder, precision, batch_sizes)
        finally:
            Int8Linear.per_token, UnpaddedLayout.build = saved, build
    return _RUNS[key]


def _unpadded_groups(build):
    """``UnpaddedLayout.build`` grouping only rows of one length for attention.

    A group of rows padded to its longest is attended by SDPA over more keys than a row alone, so
    float32 sums in another order (last bits: float32's own batch noise, ~1e-7). int8 requantizes
    every layer's output, and a value within a last bit of a grid point's boundary can land on the
    next level (~1e-4 of the logits at the end). With these groups float32 is exact across batches,
    so whatever int8 adds is seen."""
    return classmethod(lambda cls, *args, **kwargs: build(cls, *args, **{**kwargs, "max_padding": 0.0}))


def _run(folder, precision, batch_sizes):
    import spacy

    nlp = spacy.blank("en")
    ner = nlp.add_pipe("luke_ner", config={"pretrained": str(folder), "max_mention_length": 8, "precision": precision})
    logits = {}
    annotate = ner.set_annotations

    def recording(docs, scores):
        docs = list(docs)
        for doc, doc_scores in zip(docs, scores):
            logits[doc.text] = doc_scores.logits.copy()
        return annotate(docs, scores)

    ner.set_annotations = recording
    texts = _texts()
    runs = {}
    for batch_size in batch_sizes:
        logits.clear()
        docs = list(nlp.pipe(texts, batch_size=batch_size))
        entities = [[(e.start, e.end, e.label_, e._.luke_score) for e in doc.ents] for doc in docs]
        runs[batch_size] = (entities, [logits[t] for t in texts])
    return runs


def _assert_same_entities(runs, score_tolerance):
    one_by_one = runs[1][0]
    assert sum(map(len, one_by_one)) > 10  # the random head finds entities
    for batch_size, (entities, _) in runs.items():
        for i, (alone, batched) in enumerate(zip(one_by_one, entities)):
            assert [e[:3] for e in alone] == [e[:3] for e in batched], (batch_size, i)
            np.testing.assert_allclose([e[3] for e in alone], [e[3] for e in batched], rtol=0, atol=score_tolerance)


def _assert_same_logits(runs, tolerance):
    """Each doc's logits in a batch are its logits alone, within ``tolerance`` of their largest."""
    for batch_size, (_, logits) in runs.items():
        for i, (alone, batched) in enumerate(zip(runs[1][1], logits)):
            scale = max(1.0, float(np.abs(alone).max(initial=0.0)))
            assert alone.shape == batched.shape
            assert np.abs(alone - batched).max(initial=0.0) <= tolerance * scale, (batch_size, i)


@pytest.mark.heavy  # 40 docs in batches of 1, 8 and 32, per precision and checkpoint: 15-120 s each
@pytest.mark.parametrize("precision", ["float32", "int8"])
@pytest.mark.parametrize("checkpoint", ["ner_checkpoint", "outlier_checkpoint"])
def test_int8_adds_no_batch_dependence(request, checkpoint, precision):
    """With float32 exact across batches, int8 is too: the same entities, scores and logits, bit for
    bit, one by one as in batches of 8 and 32 (with one scale per call: 1 doc of 40 with other
    entities, logits off by 2e-3; 14 of 40 with the outlier dimension). The outlier checkpoint's
    rows have outlier entries, multiplied in float32 beside the int8 product."""
    runs = _runs(request.getfixturevalue(checkpoint), precision, exact_attention=True)
    _assert_same_entities(runs, score_tolerance=0.0)
    _assert_same_logits(runs, tolerance=0.0)


@pytest.mark.heavy  # the 40 docs in three batch sizes: 8-13 s each
@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_batches_give_the_docs_one_by_one_entities(ner_checkpoint, precision):  # noqa: F811
    """The pipes' defaults (attention groups padded up to 10%): the same entities in any batch.
    float32's logits differ in the last bits (1e-7 of their size); int8's by up to a grid step
    where such a difference crosses a rounding boundary (see :func:`_unpadded_groups`)."""
    runs = _runs(ner_checkpoint, precision)
    _assert_same_entities(runs, score_tolerance=1e-5 if precision == "float32" else 1e-3)
    if precision == "float32":
        _assert_same_logits(runs, tolerance=1e-6)


@pytest.mark.heavy  # four runs of the 40 docs: 90 s or more alone
def test_int8_per_token_agrees_with_float32_as_well_as_per_call(ner_checkpoint, outlier_checkpoint):  # noqa: F811
    """Per-token scales lose nothing against the per-call ones: float32's entities found (on
    these 40 docs the two schemes land within a few points of each other, either way). The floor
    is for int8 as such: the random weights make many close calls, and the CPU's int8 kernels move
    it (the outlier checkpoint: 0.79 per token, 0.82 per call on Intel Sapphire Rapids with AMX)."""

    def found(folder, per_token):
        float32 = _runs(folder, "float32", exact_attention=True)[1][0]
        settings = {"exact_attention": True} if per_token else {"batch_sizes": (1,), "per_token": False}
        int8 = _runs(folder, "int8", **settings)[1][0]
        strip = lambda ents: {e[:3] for e in ents}  # noqa: E731
        return sum(len(strip(a) & strip(b)) for a, b in zip(float32, int8)) / sum(map(len, float32))

    assert Int8Linear.per_token  # the default
    for folder in (ner_checkpoint, outlier_checkpoint):
        per_token, per_call = found(folder, True), found(folder, False)
        assert per_token >= per_call - 0.03 and per_token > 0.75, (folder.name, per_token, per_call)


def _layer(in_features, out_features, seed):
    gen = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(in_features, out_features)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(out_features, in_features, generator=gen) * 0.05)
        linear.bias.copy_(torch.randn(out_features, generator=gen))
    return linear, quantize_linears(torch.nn.Sequential(linear))[0]


def _rows(n, in_features, seed):
    """Rows of very different sizes, with outlier entries in some (the same channel, others, many),
    an all-zero row and a constant one."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_features, generator=gen) * torch.logspace(-2, 1, n)[torch.randperm(n, generator=gen)][:, None]
    x[::3, 5] *= 60.0
    x[1::7, 1] *= 40.0
    x[2::11, -1] *= 25.0
    x[4, : in_features // 12] *= 30.0
    x[6] = 0.0
    x[8] = 0.25
    return x


@pytest.mark.parametrize("shape", [(37, 32), (768, 96), (256, 768)])
def test_int8_linear_rows_do_not_depend_on_the_batch(shape):
    """A row's output is bit for bit the same alone, in any slice of a batch, or in a 3-d batch."""
    linear, view = _layer(*shape, seed=sum(shape))
    assert view.per_token  # the default
    x = _rows(90, shape[0], seed=shape[1])
    with torch.inference_mode():
        batch = view(x)
        alone = torch.cat([view(x[i : i + 1]) for i in range(len(x))])
        sliced = torch.cat([view(x[a:b]) for a, b in ((0, 7), (7, 8), (8, 50), (50, 90))])
        shaped = view(x.view(9, 10, -1)).reshape(90, -1)
        assert torch.equal(alone, batch) and torch.equal(sliced, batch) and torch.equal(shaped, batch)
        # The per-call scheme is not: the rows of a slice get that slice's scale.
        view.per_token = False
        per_call = view(x)
        assert not torch.equal(torch.cat([view(x[i : i + 1]) for i in range(len(x))]), per_call)
        assert torch.equal(batch[6], view.bias)  # the all-zero row: exactly the bias
        view.per_token, view.row_outlier_ratio = True, 0.0
        no_outliers = view(x)
        exact = linear(x)
    rms = lambda got: (got - exact).square().mean().sqrt()  # noqa: E731
    # closer to float32 than one scale per call (even with its outlier channels in float32), and
    # the outlier entries in float32 keep them from setting their rows' scales
    assert rms(batch) < rms(per_call) and rms(batch) < 0.6 * rms(no_outliers)

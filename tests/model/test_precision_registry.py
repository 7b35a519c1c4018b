"""The precision modes: one registry in spacy_luke.model.views.precision, read by the thinc layer and the device plans."""
from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import spacy_luke.model as ours
from support.checkpoints import make_inputs
from spacy_luke.model.views import precision
from spacy_luke.model.views.precision import (
    MODES,
    PRECISIONS,
    Precision,
    effective_precision,
    get_precision,
    inference_view,
    precision_context,
)

HEAD = "LukeForEntitySpanClassification"
PACKAGE = Path(precision.__file__).resolve().parents[2]  # spacy_luke


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(precision, "_WARNED", set())


def _recorded(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


def test_each_mode_is_named_once_with_its_settings():
    assert PRECISIONS == tuple(MODES) == ("float32", "bfloat16", "float16", "int8")
    assert all(isinstance(mode, Precision) and mode.name == name for name, mode in MODES.items())
    # No mode casts per call: the 16-bit modes cast their weights once, in their view.
    assert {name: mode.autocast for name, mode in MODES.items()} == dict.fromkeys(PRECISIONS)
    # Every mode has a view: float32's runs the same weights on oneDNN's products on the CPU.
    assert [name for name, mode in MODES.items() if mode.view is not None] == ["float32", "bfloat16", "float16", "int8"]
    assert [(name, mode.devices, mode.fallback) for name, mode in MODES.items() if mode.devices] == [("int8", ("cpu",), "float32")]


def test_gpu_fallbacks_are_the_modes_own(fresh_warnings, monkeypatch):
    """Each mode says what runs on a GPU (``on_cuda``: pure, what annotate's device plans read) and
    ``on`` follows it on a real device: int8 runs float32, bfloat16 float16 where there is no bfloat16."""
    assert precision.precision_names() == PRECISIONS
    assert {name: mode.no_bf16_fallback for name, mode in MODES.items() if mode.no_bf16_fallback} == {"bfloat16": "float16"}
    assert MODES["bfloat16"].on_cuda(True, "cuda:0") == ("bfloat16", "")
    assert MODES["bfloat16"].on_cuda(False, "cuda:0") == ("float16", "cuda:0 has no bfloat16 support: running float16 instead")
    assert MODES["int8"].on_cuda(True, "cuda:1") == ("float32", "int8 does not run on GPUs: running float32 on cuda:1")
    assert [MODES[name].on_cuda(False) for name in ("float32", "float16")] == [("float32", ""), ("float16", "")]
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: False)
    result, messages = _recorded(lambda: get_precision("bfloat16").on(torch.device("cuda", 0)))
    assert result is MODES["float16"] and messages == ["precision='bfloat16': cuda:0 has no bfloat16 support: running float16 instead."]
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: True)
    assert _recorded(lambda: get_precision("bfloat16").on("cuda:1")) == (MODES["bfloat16"], [])


def test_the_registry_imports_no_torch():
    """The command line reads the names for its --help, which must not import torch."""
    import subprocess
    import sys

    code = (
        "import sys\nsys.modules['torch'] = None\n"
        "from spacy_luke.model.views.precision import precision_names, get_precision\n"
        "from spacy_luke.model import PRECISIONS\n"
        "print(precision_names() == PRECISIONS, get_precision('bfloat16').on_cuda(False)[0])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["True", "float16"], result.stderr[-2000:]


def test_unknown_modes_name_the_choices():
    for bad in ("double", "", None, ["int8"]):
        with pytest.raises(ValueError, match="choose one of float32, bfloat16, float16, int8"):
            get_precision(bad)
    assert get_precision("int8") is MODES["int8"]


def test_contexts():
    for name in PRECISIONS:  # no registered mode autocasts
        assert isinstance(precision_context(name, "cpu"), type(contextlib.nullcontext()))
        with precision_context(name, "cpu"):
            assert not torch.is_autocast_enabled("cpu")
    # The field stays for a mode whose weights cannot be cast once.
    context = Precision("autocast-mode", autocast=torch.bfloat16).context("cpu")
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    with Precision("autocast-mode", autocast=torch.bfloat16).context("cpu"):
        assert torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


def test_device_fallback_warns_once(fresh_warnings):
    result, messages = _recorded(lambda: get_precision("int8").on("cuda"))
    assert result is MODES["float32"]
    assert len(messages) == 1 and "runs on the CPU only; the model is on cuda" in messages[0]
    _, again = _recorded(lambda: effective_precision("int8", "cuda"))
    assert again == []  # once
    result, messages = _recorded(lambda: get_precision("int8").on("cpu"))
    assert result is MODES["int8"] and messages == []
    result, messages = _recorded(lambda: get_precision("float16").on(torch.device("cuda", 0)))
    assert result is MODES["float16"] and messages == []


def test_slow_modes_warn_where_slow(fresh_warnings, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert _recorded(lambda: effective_precision("bfloat16", "cpu")) == ("bfloat16", [])
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    name, messages = _recorded(lambda: effective_precision("bfloat16", "cpu"))
    assert name == "bfloat16" and len(messages) == 1 and "emulated" in messages[0]
    name, messages = _recorded(lambda: effective_precision("float16", "cpu"))
    assert name == "float16" and len(messages) == 1 and "float16" in messages[0]


def test_views(hf_checkpoint):
    folder, reference = hf_checkpoint(HEAD)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    from spacy_luke.model.views.linear_views import OneDnnLinear, onednn_linear_available

    plain = inference_view(model, "float32")  # the same weights, on oneDNN's products where it has them
    assert (plain is model) != onednn_linear_available()
    assert {p.data_ptr() for p in plain.parameters()} == {p.data_ptr() for p in model.parameters()}
    assert onednn_linear_available() == any(isinstance(m, OneDnnLinear) for m in plain.modules())
    for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        view = inference_view(model, name)
        assert view is not model and not view.training
        assert {p.dtype for p in view.luke.parameters()} == {dtype}
        assert view.classifier.weight.dtype == torch.float32  # the output layer (views.half.KEEP_FLOAT_16)
        assert {p.data_ptr() for p in view.parameters()}.isdisjoint(p.data_ptr() for p in model.parameters())
        assert {p.dtype for p in model.parameters()} == {torch.float32}  # the float model is untouched
    view = inference_view(model, "int8")
    assert view is not model and not view.training
    assert type(view.luke.encoder.layer[0].intermediate.dense) is not torch.nn.Linear


def test_no_precision_name_checked_outside_the_registry():
    """Modes are told apart by the registry's fields, never by comparing their names elsewhere."""
    names = "|".join(PRECISIONS)
    check = re.compile(rf"""(==|!=|\bin\b|\bis\b)\s*[\(\[{{]?\s*["']({names})["']|["']({names})["']\s*(==|!=|\bin\b)""")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "precision.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
            if check.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []


def test_a_new_mode_needs_only_the_registry(hf_checkpoint, monkeypatch):
    """A mode added to MODES runs through the thinc layer with its own view and autocast."""
    from thinc.api import Model

    from spacy_luke.layers import build_luke_head_model, set_torch_module

    folder, reference = hf_checkpoint(HEAD)
    model = ours.LukeForEntitySpanClassification.from_pretrained(folder)
    built, autocast = [], []

    def view(luke_model):
        built.append(luke_model)
        return luke_model

    class Recording(Precision):
        def context(self, device):
            autocast.append(str(device))
            return super().context(device)

    mode = Recording("test-mode", autocast=torch.bfloat16, view=view)
    monkeypatch.setitem(MODES, "test-mode", mode)
    head: Model = build_luke_head_model("test", head=HEAD)
    set_torch_module(head, model, precision="test-mode")
    inputs = make_inputs(HEAD, reference.config)
    batch = {key: value.numpy() for key, value in inputs.items()}
    logits = head.predict(batch)
    assert built == [model] and autocast  # the view was built (once) and the autocast entered
    assert isinstance(logits, np.ndarray) and logits.shape[:2] == tuple(inputs["entity_ids"].shape)
    head.predict(batch)
    assert built == [model]  # cached while the weights stay the same

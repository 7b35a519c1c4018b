"""Inference views of a LUKE model: what predictions run instead of the float model itself.

- :mod:`.precision`: the precision modes, one registry (``MODES``; names: ``precision_names()``),
  each with its view, its devices and its fallbacks. Imports no torch.
- :mod:`.half`: the 16-bit view (the model cast once to bfloat16 / float16).
- :mod:`.int8`: the int8 view (dynamically quantized linear layers on oneDNN).
- :mod:`.linear_views`: what both CPU views build on: a copy of a model with its ``nn.Linear``
  layers replaced, and the float32 oneDNN view.

A view is built from the float model (the views import the model's modules; nothing in
``spacy_luke.model`` outside this package imports it) and shares with it what it does not replace.
"""
from .precision import MODES, PRECISIONS, Precision, get_precision, inference_view, precision_names

__all__ = ["MODES", "PRECISIONS", "Precision", "get_precision", "inference_view", "precision_names"]

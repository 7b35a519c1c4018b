"""The settings several LUKE factories take: their defaults and their docstring lines, each once.

A factory's ``default_config`` is ``{**SHARED_SETTINGS, ...its own}`` (``TRAINABLE_SETTINGS`` for
the pipes that train), and :func:`document_settings` completes its docstring: the factory writes
the lines of its own arguments (``name (type): what it does``, one line each), the lines of the
shared ones it takes come from :data:`SETTING_LINES`, and the docstring lists them all, one line
per argument, in the signature's order (what ``spacy init fill-config`` users read).
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Dict, TypeVar

#: Settings every LUKE pipe has.
SHARED_SETTINGS: Dict[str, Any] = {"pretrained": None, "max_batch_cost": 16384, "lite": True, "precision": "float32", "engine": "torch"}
#: Those of the pipes that train.
TRAINABLE_SETTINGS: Dict[str, Any] = {**SHARED_SETTINGS, "freeze_encoder": False}

#: ``name (type): what it does`` of each shared setting, without its name. A factory takes a
#: variant ``name/variant`` with ``document_settings(..., name="variant")``. ``{architecture}``
#: and ``{scorer}`` are the factory's defaults.
SETTING_LINES: Dict[str, str] = {
    "model": "(Model): the thinc model ({architecture} by default).",
    "pretrained": "(Optional[str]): hub id or local folder of a LUKE checkpoint; labels come from its id2label.",
    "max_entities_per_pass": "(int): entity slots (spans, mentions) per model input; more reuse the same word window in further passes.",
    "max_batch_cost": "(int): padded (word pieces + entity slots) x batch size per forward pass.",
    "lite": "(bool): keep only the special entities of the entity table (the pipe inputs no Wikipedia entity).",
    "lite/kb_ids": "(Optional[bool]): keep only the special entities of the entity table; default: true unless use_kb_ids.",
    "freeze_encoder": "(bool): train only the task head; the encoder keeps its weights.",
    "scorer": "(Optional[Callable]): the scoring function ({scorer} by default).",
    "precision": (
        '(str): how predictions run: a mode of spacy_luke.model.PRECISIONS ("float32"; "bfloat16" / "float16": '
        'a 16-bit copy of the weights cast once; "int8": CPU int8 linear layers on oneDNN).'
    ),
    "training_precision": (
        '(str): how training calls run: "float32" (default); "bfloat16": bfloat16 autocast on CPUs with AVX512-BF16/AMX '
        'and on GPUs (float16 with a gradient scaler on GPUs without bfloat16), float32 elsewhere with a warning; '
        '"float16": float16 autocast with a gradient scaler on GPUs. Weights and optimizer state stay float32; '
        "predictions follow precision. Measured in docs/benchmarks.md."
    ),
    "engine": (
        '(str): what runs predictions: an engine of spacy_luke.layers.engines.ENGINES, "torch" (our model) or "onnxruntime" '
        '(the head exported to ONNX at first use and run by ONNX Runtime on the CPU, precision "float32" or "int8"; '
        'needs spacy-luke[onnx]). Training always runs torch.'
    ),
}

#: The factory arguments spaCy passes itself (not settings).
NOT_SETTINGS = ("nlp", "name")
_ARGUMENT_LINE = re.compile(r"^(\w+) \(.+?\): ")

Factory = TypeVar("Factory", bound=Callable[..., Any])


def document_settings(defaults: Dict[str, Any], **variants: str) -> Callable[[Factory], Factory]:
    """Complete a factory's docstring with the lines of the shared settings it takes.

    defaults: the factory's ``default_config`` (its model's architecture and its scorer are named).
    variants: a shared setting -> the variant of its line the factory takes (``lite="kb_ids"``).
    Raises TypeError (at import) for an argument no line documents, a line for no argument, or an
    argument documented twice.
    """
    values = {
        "architecture": (defaults.get("model") or {}).get("@architectures"),
        "scorer": (defaults.get("scorer") or {}).get("@scorers"),
    }

    def decorate(factory: Factory) -> Factory:
        summary, own = _own_lines(factory)
        lines = []
        for name in inspect.signature(factory).parameters:
            if name in NOT_SETTINGS:
                continue
            if name in own:
                lines.append(own.pop(name))
                continue
            key = f"{name}/{variants[name]}" if name in variants else name
            if key not in SETTING_LINES:
                raise TypeError(f"{factory.__name__}: its docstring has no line for the argument {name!r}, and no shared setting is named {key!r}.")
            lines.append(f"{name} {SETTING_LINES[key].format(**values)}")
        if own:
            raise TypeError(f"{factory.__name__}: its docstring documents {sorted(own)}, which it does not take.")
        factory.__doc__ = summary + "\n\n" + "".join(f"    {line}\n" for line in lines)
        return factory

    return decorate


def _own_lines(factory: Callable[..., Any]):
    """The docstring's summary (all before the first argument line) and its argument lines by name."""
    text = inspect.cleandoc(factory.__doc__ or "")
    summary, own = [], {}
    for line in text.splitlines():
        found = _ARGUMENT_LINE.match(line)
        if found:
            if found.group(1) in own:
                raise TypeError(f"{factory.__name__}: its docstring documents {found.group(1)!r} twice.")
            own[found.group(1)] = line
        elif own and line.strip():
            raise TypeError(f"{factory.__name__}: one line per argument; {line!r} follows the argument lines.")
        elif not own:
            summary.append(line)
    return "\n".join(summary).strip(), own

"""LukeConfig: the hyperparameters of a LUKE checkpoint, read from its config.json.

:func:`validate_config` checks a config's values (sizes, heads, labels) before anything is
built from them; every LukeConfig goes through it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

# Keys a checkpoint's config.json must have: the shapes of the weights. Everything else falls
# back to the defaults transformers' LukeConfig uses when a key is absent.
REQUIRED_KEYS = (
    "vocab_size",
    "entity_vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)
# Keys that size a weight tensor (or the layer count): positive integers, never bools or floats.
SIZE_KEYS = REQUIRED_KEYS + ("entity_emb_size", "type_vocab_size")
_FIX = "use the config.json that came with the checkpoint (download or save it again)"


class ConfigError(ValueError):
    """A config that cannot describe a LUKE model: the message names the file, the key and the fix."""


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", type(None): "null"}
    return names.get(type(value), "object" if isinstance(value, Mapping) else type(value).__name__)


def _label_id(key: Any) -> Any:
    """An id2label key as an int (JSON keys are strings: "3" -> 3); anything else as it is."""
    if isinstance(key, str) and key.strip().lstrip("-").isdigit():
        return int(key)
    return key


def _label_ids(source: str, key: str, ids: list) -> None:
    """``ids`` (the label ids of ``key``) must be exactly 0..n-1."""
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int)]
    if bad or sorted(ids) != list(range(len(ids))):
        shown = sorted(set(i for i in ids if i not in bad))
        gaps = sorted(set(range(len(ids))) - set(shown))
        what = f"non-integer ids {bad[:5]!r}" if bad else (
            f"ids {shown[:10]}{' ...' if len(shown) > 10 else ''}" + (f" (missing {gaps[:5]})" if gaps else "")
        )
        raise ConfigError(
            f"{source}: {key} has {what}, but label ids must be exactly 0..{len(ids) - 1} "
            f"(one per row of the classifier): fix {key}, or {_FIX}."
        )


def validate_config(data: Any, *, source: str = "config") -> None:
    """Raise ConfigError (naming ``source``, the key and the fix) unless ``data`` can build a LUKE model.

    Checks: a JSON object; the shape keys present; sizes positive integers (no bools, no floats);
    num_attention_heads divides hidden_size; id2label keys (or label2id values) exactly 0..n-1;
    num_labels a non-negative integer. The layer count against a checkpoint's tensors is checked
    where the checkpoint is read (``from_pretrained``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a JSON object of model settings ({{\"hidden_size\": 768, ...}}), "
            f"got a JSON {_json_type(data)}: {_FIX}."
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ConfigError(
            f"{source} is missing {missing}: a LUKE config.json must give the model's shapes. "
            "Use the config.json that came with the checkpoint."
        )
    for key in SIZE_KEYS:
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            kind = "" if _json_type(value) == "integer" else f" (a {_json_type(value)})"
            hint = f" (write {int(value)})" if isinstance(value, float) and value.is_integer() and value > 0 else ""
            raise ConfigError(
                f"{source}: {key} is {json.dumps(value, default=repr)}{kind}, but it must be a positive "
                f"integer{hint}: fix {key}, or {_FIX}."
            )
    if data["hidden_size"] % data["num_attention_heads"] != 0:
        raise ConfigError(
            f"{source}: hidden_size ({data['hidden_size']}) is not a multiple of num_attention_heads "
            f"({data['num_attention_heads']}): fix num_attention_heads, or {_FIX}."
        )
    for key in ("id2label", "label2id"):
        value = data.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key} is a JSON {_json_type(value)}, but it must be an object: fix {key}, or {_FIX}.")
    id2label, label2id = data.get("id2label") or {}, data.get("label2id") or {}
    if id2label:
        _label_ids(source, "id2label", [_label_id(k) for k in id2label])
    elif label2id:
        _label_ids(source, "label2id", list(label2id.values()))
    num_labels = data.get("num_labels", data.get("extra", {}).get("num_labels") if isinstance(data.get("extra"), Mapping) else None)
    if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 0):
        raise ConfigError(
            f"{source}: num_labels is {num_labels!r}, but it must be a non-negative integer: fix num_labels, or {_FIX}."
        )


class Id2Label(dict):
    """``config.id2label``: a dict whose missing ids say why they are missing (never a bare KeyError).

    A converted encoder or a pretraining checkpoint has no labels (``{}``): its task head is new,
    with ``num_labels`` (2) outputs that name nothing until the model is trained with labels.
    """

    def __missing__(self, key):
        if not self:
            raise KeyError(
                f"id2label has no label {key!r}: this checkpoint has no labels (a converted encoder or a pretraining "
                "checkpoint, whose task head is new and untrained); train it with your labels, or name the outputs "
                "with config.with_labels([...])"
            )
        raise KeyError(f"id2label has no label {key!r}: the checkpoint's labels are ids {min(self)}..{max(self)}")


@dataclass
class LukeConfig:
    vocab_size: int
    entity_vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    entity_emb_size: int = 256
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    use_entity_aware_attention: bool = True
    classifier_dropout: Optional[float] = None
    # The entity-pair head has no bias in the reference; some fine-tuned checkpoints add one.
    classifier_bias: Optional[bool] = None
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    tie_word_embeddings: bool = True
    id2label: Dict[int, str] = field(default_factory=dict)
    label2id: Dict[str, int] = field(default_factory=dict)
    problem_type: Optional[str] = None
    architectures: Optional[list] = None
    model_type: str = "luke"
    # Every other key of config.json, kept so that nothing the checkpoint says is lost.
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_config({f.name: getattr(self, f.name) for f in fields(self)}, source="LukeConfig")
        self.id2label = Id2Label({int(k): str(v) for k, v in (self.id2label or {}).items()})
        if self.id2label and not self.label2id:
            self.label2id = {v: k for k, v in self.id2label.items()}
        self.label2id = {str(k): int(v) for k, v in (self.label2id or {}).items()}
        if not self.id2label and self.label2id:
            self.id2label = Id2Label({v: k for k, v in self.label2id.items()})

    @property
    def num_labels(self) -> int:
        return len(self.id2label) if self.id2label else 2

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def with_labels(self, labels) -> "LukeConfig":
        """A copy of this config whose classification labels are ``labels`` (in order)."""
        data = self.to_dict()
        data["id2label"] = {i: str(label) for i, label in enumerate(labels)}
        data["label2id"] = {str(label): i for i, label in enumerate(labels)}
        return LukeConfig.from_dict(data)

    @classmethod
    def from_dict(cls, data: Dict[str, Any], *, source: str = "config") -> "LukeConfig":
        validate_config(data, source=source)
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = dict(data.get("extra", {}))
        extra.update({k: v for k, v in data.items() if k not in names and k != "extra"})
        if "num_labels" in extra and not known.get("id2label") and not known.get("label2id"):
            known["id2label"] = {i: f"LABEL_{i}" for i in range(int(extra["num_labels"]))}
        return cls(**known, extra=extra)

    @classmethod
    def from_json_file(cls, path: Union[str, Path]) -> "LukeConfig":
        path = Path(path)
        try:
            with path.open(encoding="utf8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"No config.json at {path}: a LUKE checkpoint folder needs one.") from None
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{path}: invalid JSON at line {err.lineno}, column {err.colno} ({err.msg}): {_FIX}."
            ) from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text ({err}): {_FIX}.") from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data.update(extra)
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return data

    def to_json_file(self, path: Union[str, Path]) -> None:
        with Path(path).open("w", encoding="utf8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

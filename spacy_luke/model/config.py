"""LukeConfig: the hyperparameters of a LUKE checkpoint, read from its config.json."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional, Union

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
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads}); check the checkpoint's config.json."
            )
        self.id2label = {int(k): str(v) for k, v in (self.id2label or {}).items()}
        if self.id2label and not self.label2id:
            self.label2id = {v: k for k, v in self.id2label.items()}
        self.label2id = {str(k): int(v) for k, v in (self.label2id or {}).items()}
        if not self.id2label and self.label2id:
            self.id2label = {v: k for k, v in self.label2id.items()}

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
        missing = [key for key in REQUIRED_KEYS if key not in data]
        if missing:
            raise ValueError(
                f"{source} is missing {missing}: a LUKE config.json must give the model's shapes. "
                "Use the config.json that came with the checkpoint."
            )
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
            raise ValueError(f"{path} is not valid JSON ({err}).") from None
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

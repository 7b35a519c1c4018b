"""What every LUKE pipe shares: weights loaded late, self-contained serialization, batched passes.

- Constructing a pipe loads nothing. Weights load in ``initialize()`` (from ``pretrained`` or
  the ``loader`` of ``[initialize.components.NAME]``), or on first use when ``pretrained`` is set,
  or in ``from_disk`` / ``from_bytes`` from the pipe's own saved copy.
- A saved pipe is a Hugging Face-layout folder (config.json, model.safetensors, tokenizer files,
  entity_vocab.json) plus ``cfg``: ``spacy.load`` never needs the network or the original folder.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import srsly
from spacy import util
from spacy.errors import Errors
from spacy.pipeline import TrainablePipe
from spacy.vocab import Vocab
from thinc.api import Model

from ...layers.head_layer import (
    get_pieces,
    get_torch_module,
    head_layer,
    is_loaded,
    load_luke_folder,
    save_luke_folder,
    set_engine,
    set_precision,
)
from ...layers.items_model import configure_items_model
from ...layers.engines import check_engine

MODEL_DIR = "luke"
#: Held while a pipe loads its weights at first use (rare: one lock for all pipes, picklable pipes).
_LOAD_LOCK = threading.RLock()


class LukePipe(TrainablePipe):
    """Base class of the LUKE pipes. Subclasses set ``head`` and the task logic."""

    head: str = "LukeModel"
    n_markers: int = 0  # marked spans per input (<ent> ... <ent>, <ent2> ... <ent2>)

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str,
        *,
        pretrained: Optional[str],
        lite: bool = False,
        freeze_encoder: bool = False,
        max_entities_per_pass: int = 128,
        max_batch_cost: int = 16384,
        scorer: Optional[Callable] = None,
        precision: str = "float32",
        engine: str = "torch",
        **cfg: Any,
    ):
        _check_precision(name, precision)
        check_engine(name, engine, precision, self.head)
        if max_entities_per_pass < 1:
            raise ValueError(f"[{name}] max_entities_per_pass must be at least 1, got {max_entities_per_pass}.")
        if max_batch_cost < 1:
            raise ValueError(f"[{name}] max_batch_cost must be positive, got {max_batch_cost}.")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "pretrained": pretrained,
            "lite": lite,
            "freeze_encoder": freeze_encoder,
            "max_entities_per_pass": max_entities_per_pass,
            "max_batch_cost": max_batch_cost,
            "precision": precision,
            "engine": engine,
            "labels": [],
            **cfg,
        }
        # The model owns the weights, the tokenizer and the path from Docs to scores
        # (spacy_luke.layers): the pipe gives it its settings.
        set_precision(model, precision)
        set_engine(model, engine)
        self._configure_model()

    def _configure_model(self) -> None:
        """Give the model the pipe's batching settings (its layers read them per call)."""
        configure_items_model(
            self.model, pipe_name=self.name, max_entities_per_pass=self.cfg["max_entities_per_pass"],
            max_batch_cost=self.cfg["max_batch_cost"], engine=self.cfg["engine"],
        )

    def configure(self, *, precision: Optional[str] = None, engine: Optional[str] = None, max_batch_cost: Optional[int] = None) -> None:
        """Change how predictions run: the precision mode, the engine, the batch cost bound
        (kept in the pipe's cfg, so a saved pipe keeps them)."""
        if precision is not None:
            _check_precision(self.name, precision)
        if precision is not None or engine is not None:
            check_engine(self.name, engine or self.cfg["engine"], precision or self.cfg["precision"], self.head)
        if max_batch_cost is not None and max_batch_cost < 1:
            raise ValueError(f"[{self.name}] max_batch_cost must be positive, got {max_batch_cost}.")
        if precision is not None:
            self.cfg["precision"] = precision
            set_precision(self.model, precision)
        if engine is not None:
            self.cfg["engine"] = engine
            set_engine(self.model, engine)
        if max_batch_cost is not None:
            self.cfg["max_batch_cost"] = int(max_batch_cost)
        self._configure_model()

    # ------------------------------------------------------------------ loading

    @property
    def is_loaded(self) -> bool:
        return is_loaded(self.model)

    @property
    def luke_model(self):
        """The torch LUKE model (loads the weights if needed)."""
        self._ensure_loaded()
        return get_torch_module(self.model)

    @property
    def tokenizer(self):
        """The word+entity tokenizer of the pipe's weights (loads them if needed)."""
        self._ensure_loaded()
        return get_pieces(self.model).tokenizer

    @property
    def doc_encoder(self):
        """The Doc encoder (word pieces of spaCy tokens) on :attr:`tokenizer`."""
        self._ensure_loaded()
        return get_pieces(self.model).doc_encoder

    # Loaded-only shortcuts for the pipes' hot paths (no load check per call).
    @property
    def _tokenizer(self):
        return get_pieces(self.model).tokenizer

    @property
    def _encoder(self):
        return get_pieces(self.model).doc_encoder

    def _ensure_loaded(self) -> None:
        if self.is_loaded:
            return
        with _LOAD_LOCK:  # threads calling a fresh pipe at once: one loads, the others wait and share it
            if not self.is_loaded:
                self._load_pretrained()

    def _load_pretrained(self) -> None:
        if not self.cfg.get("pretrained"):
            raise ValueError(
                f"[{self.name}] has no weights: set `pretrained` (a hub id or a local LUKE folder) in the "
                f"pipe's config, or call nlp.initialize() with a loader in [initialize.components.{self.name}]."
            )
        from ...convert.checkpoints import LukeCheckpoint

        self._load(LukeCheckpoint(self.cfg["pretrained"], lite=self.cfg["lite"]))

    def _checkpoint_to_initialize(self, loader: Optional[Callable[[], Any]]):
        """The checkpoint ``initialize`` loads: the ``[initialize]`` loader's, else ``pretrained``."""
        from ...convert.checkpoints import LukeCheckpoint

        if loader is None:
            if not self.cfg.get("pretrained"):
                raise ValueError(
                    f"[{self.name}] needs weights to initialize: set `pretrained` in [components.{self.name}] "
                    f"or a loader in [initialize.components.{self.name}] "
                    '(@misc = "spacy-luke.HFLukeLoader.v1", name_or_path = ...).'
                )
            checkpoint = LukeCheckpoint(self.cfg["pretrained"])
        else:
            checkpoint = loader()
        return LukeCheckpoint(checkpoint.name_or_path, revision=checkpoint.revision, lite=checkpoint.lite or self.cfg["lite"])

    def _model_config(self, checkpoint_config):
        """The config to build the head with (subclasses set labels here); None keeps the checkpoint's."""
        return None

    def _load(self, checkpoint) -> None:
        from ...model import LukeConfig

        folder = checkpoint.resolve()
        config = self._model_config(LukeConfig.from_json_file(folder / "config.json"))
        load_luke_folder(self.model, folder, lite=checkpoint.lite, config=config, revision=checkpoint.revision)
        self._weights_arrived()

    def _weights_arrived(self) -> None:
        """After the model received weights (load, from_disk, from_bytes): apply the pipe's settings."""
        luke_model = get_torch_module(self.model)
        if self.cfg["freeze_encoder"]:
            for param in luke_model.luke.parameters() if hasattr(luke_model, "luke") else luke_model.parameters():
                param.requires_grad_(False)
        self._after_load(luke_model)

    def _after_load(self, luke_model) -> None:
        """Hook: read labels etc. from the loaded model."""

    # ------------------------------------------------------------------ inputs

    def _word_budget(self) -> int:
        """Word pieces one model input holds (see ``spacy_luke.layers.doc_pieces.word_budget``)."""
        from ...layers.doc_pieces import word_budget

        return word_budget(self.luke_model.config, self._tokenizer, self.n_markers)

    # ------------------------------------------------------------------ serialization

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        path = util.ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        if "model" not in exclude:
            self._ensure_loaded()
            save_luke_folder(self.model, path / MODEL_DIR)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "LukePipe":
        path = util.ensure_path(path)
        if (path / "cfg").is_file():
            self._read_cfg(srsly.read_json(path / "cfg"))
        if "model" not in exclude:
            if not (path / MODEL_DIR / "config.json").is_file():
                raise ValueError(f"[{self.name}] {path} holds no saved LUKE model ({MODEL_DIR}/config.json is missing).")
            # The saved entity vocabulary is already pruned: load it as is.
            load_luke_folder(self.model, path / MODEL_DIR)
            self._weights_arrived()
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        if "model" not in exclude:
            self._ensure_loaded()
        serialize = {"cfg": lambda: srsly.json_dumps(self.cfg), "model": head_layer(self.model).to_bytes}
        return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "LukePipe":
        def load_model(data: bytes) -> None:
            head_layer(self.model).from_bytes(data)
            if self.is_loaded:
                self._weights_arrived()

        deserialize = {"cfg": lambda data: self._read_cfg(srsly.json_loads(data)), "model": load_model}
        util.from_bytes(bytes_data, deserialize, exclude)
        return self

    def _read_cfg(self, cfg: Dict[str, Any]) -> None:
        self.cfg.update(cfg)
        set_precision(self.model, self.cfg.get("precision", "float32"))
        set_engine(self.model, self.cfg.get("engine", "torch"))
        self._configure_model()

    @property
    def max_padding(self) -> float:
        """The padding a batch may hold over its real slots: loose for torch (the encoder skips
        padding), tight for ONNX Runtime (its graph computes it)."""
        from ...layers.engines import max_padding

        return max_padding(self.cfg.get("engine", "torch"))

    # ------------------------------------------------------------------ training plumbing

    def finish_update(self, sgd) -> None:
        self.model.finish_update(sgd)

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(Errors.E187)
        if label in self.cfg["labels"]:
            return 0
        self.cfg["labels"] = list(self.cfg["labels"]) + [label]
        return 1

    @property
    def labels(self) -> Tuple[str, ...]:
        pretrained = self.cfg.get("pretrained")
        if not self.cfg["labels"] and not self.is_loaded and pretrained and (Path(pretrained) / "config.json").is_file():
            # Before first use, for a local checkpoint: its labels, from config.json (no weights read).
            from ...model import LukeConfig

            path = Path(pretrained) / "config.json"
            data = srsly.read_json(path)
            if not isinstance(data, dict) or data.get("model_type", "luke") == "luke":  # other encoders: no LUKE labels yet
                return tuple(self._labels_of(LukeConfig.from_dict(data, source=str(path))))
        return tuple(self.cfg["labels"])

    def _labels_of(self, config) -> List[str]:
        """The pipe's labels given a checkpoint config (all of id2label by default)."""
        return [config.id2label[i] for i in sorted(config.id2label)]

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)


def _check_precision(pipe_name: str, precision: str) -> None:
    """A clear error for an unknown precision mode, from the one registry of modes (model/views/precision.py)."""
    try:
        from ...model.views.precision import get_precision
    except ImportError:  # torch cannot be imported here: the mode is checked when the weights load
        return
    try:
        get_precision(precision)
    except ValueError as err:
        raise ValueError(f"[{pipe_name}] {err}") from None


def __getattr__(name: str):
    if name == "PRECISIONS":  # the precision modes, from their one registry
        from ...model.views.precision import PRECISIONS

        return PRECISIONS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The thinc shim that owns a LUKE layer's torch module and its piece encoder, and serializes both.

As spacy-transformers' ``HFShim`` does, the shim exists from the moment the architecture is
built, empty; weights arrive later (:meth:`LukeShim.load_folder`, called by a pipe's
``initialize``, first use or ``from_disk``; or :meth:`LukeShim.from_bytes`). Everything about
where the weights live is here: their device (thinc's current one), their precision mode, and
their serialization: a Hugging Face-layout folder (config.json, model.safetensors, tokenizer
files, entity_vocab.json), which ``to_bytes`` packs as a dict of file bytes.

Calls never flip the module's train/eval flag. thinc's ``PyTorchShim.predict`` calls
``model.eval()`` before and ``model.train()`` after every prediction; that flag is shared by every
thread using the pipe, so one thread's ``train()`` would turn dropout on in the middle of another
thread's forward pass. Here each call says its mode through
:func:`spacy_luke.model.mode.call_mode` (a context variable: per thread) and the wrapped
:class:`~spacy_luke.layers.head_output.HeadOutput` ignores ``train()`` / ``eval()``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import srsly
from thinc.api import PyTorchGradScaler, PyTorchShim, get_torch_default_device
from thinc.shims.shim import Shim

from ..tokenization.doc_inputs.pieces import LukePieces
from .engines import DEFAULT_ENGINE


class LukeShim(PyTorchShim):
    """A PyTorch shim holding one LUKE head model (wrapped in ``HeadOutput``) and its ``LukePieces``.

    head: the ``spacy_luke.model`` class to build (``"LukeForEntitySpanClassification"``, ...).
    output: the output field the layer returns (``"logits"``, ``"entity_last_hidden_state"``).
    precision: the prediction precision mode (``spacy_luke.model.views.precision``); a pipe sets it.
    """

    def __init__(self, *, head: str, output: str, precision: str = "float32", mixed_precision: bool = False, grad_scaler_config: Optional[dict] = None):
        # Not PyTorchShim.__init__: it asks torch for a device, and a pipe is built without torch.
        Shim.__init__(self, None, config=None, optimizer=None)
        self._mixed_precision = mixed_precision
        self._grad_scaler_config = dict(grad_scaler_config or {})
        self._grad_scaler = None  # made with the first weights, on their device
        self.device_name: Optional[str] = None  # set_device: a torch device; None: thinc's current one
        self.head = head
        self.output = output
        self.precision = precision
        self.training_precision = "float32"  # the autocast of training calls (.training_precision); a pipe sets it
        self.engine = DEFAULT_ENGINE  # what runs predictions (an engine of .engines); a pipe sets it
        self.pieces: Optional[LukePieces] = None

    # ------------------------------------------------------------------ the weights

    @property
    def is_loaded(self) -> bool:
        return self._model is not None and self.pieces is not None

    @property
    def head_model(self):
        """The LUKE torch module (a ``Luke*`` class instance), or None before weights arrive."""
        return None if self._model is None else self._model.head_model

    def attach(self, head_model, pieces: LukePieces, device=None) -> None:
        """Hold ``head_model`` (on ``device``, default thinc's current one; in eval mode at rest)
        and its pieces."""
        from ..model.views.precision import get_precision
        from .head_output import HeadOutput

        _single_threaded_after_fork()
        if device is None:
            device = self.device_name if self.device_name is not None else get_torch_default_device()
        from .training_precision import training_autocast

        head_model.to(device)
        autocast = training_autocast(self.training_precision, device)
        scaled = self._mixed_precision or autocast.grad_scaler  # float16 gradients need a scaler
        if self._grad_scaler is None or self._grad_scaler._enabled != scaled:
            self._grad_scaler = PyTorchGradScaler(**self._grad_scaler_config) if scaled else PyTorchGradScaler(False)
            _use_pytorch_allocator_with_cupy()
        self._grad_scaler.to_(device)
        head_model.eval()  # at rest; each call says whether it trains
        if pieces is not None:  # one entity vocabulary: the tokenizer's (keep_entities replaces it)
            head_model.entity_vocab = pieces.tokenizer.entity_vocab
        self._model = HeadOutput(
            head_model, self.output, get_precision(self.precision).on(device), engine=self.engine, requested=self.precision
        )
        self._model.training_autocast = autocast
        self.pieces = pieces

    def set_device(self, device: str) -> None:
        """Hold the weights on ``device`` ("cpu", "cuda:0", ...) from now on, whatever thinc's
        current ops are (the layer moves its inputs there and its outputs back to numpy)."""
        import torch

        self.device_name = str(torch.device(device))
        if self._model is not None:
            self.attach(self._model.head_model, self.pieces, device=torch.device(self.device_name))

    def set_precision(self, precision: str) -> None:
        """Run predictions in ``precision`` from now on (the weights stay as they are)."""
        self.precision = precision
        if self._model is not None:
            self.attach(self._model.head_model, self.pieces, device=self._model.device)

    def set_training_precision(self, training_precision: str) -> None:
        """Run training calls under the autocast of ``training_precision`` (:mod:`.training_precision`)
        from now on; the weights and the optimizer's state stay float32."""
        if training_precision == self.training_precision:
            return
        self.training_precision = training_precision
        if self._model is not None:
            self.attach(self._model.head_model, self.pieces, device=self._model.device)

    def set_engine(self, engine: str) -> None:
        """Run predictions with ``engine`` (a name in ``.engines.ENGINES``) from now on."""
        self.engine = engine
        if self._model is not None:
            self.attach(self._model.head_model, self.pieces, device=self._model.device)

    def load_folder(self, folder: Path, *, lite: bool = False, config=None, revision: Optional[str] = None) -> None:
        """Build the head model from a LUKE checkpoint folder (``config`` overrides its config.json)."""
        from .. import model as luke_models

        pieces = LukePieces.from_folder(folder, lite=lite)
        head_model = getattr(luke_models, self.head).from_pretrained(folder, lite=lite, config=config, revision=revision)
        self.attach(head_model, pieces)

    def keep_entities(self, titles) -> int:
        """Prune the entity vocabulary and the entity table to the special entities and ``titles``
        (as LUKE's entity disambiguation training does with its white list); returns the rows kept."""
        if not self.is_loaded:
            raise ValueError("This LUKE layer has no weights to prune yet: initialize the pipe first.")
        from ..model import keep_entity_rows

        tokenizer = self.pieces.tokenizer
        rows = tokenizer.keep_entities(titles)
        keep_entity_rows(self.head_model, rows, tokenizer.entity_vocab)
        self.attach(self.head_model, self.pieces, device=self._model.device)
        return len(rows)

    def save_folder(self, folder: Path) -> None:
        """Write the weights and tokenizer as a Hugging Face-layout LUKE folder."""
        if not self.is_loaded:
            raise ValueError("This LUKE layer has no weights to save yet: initialize the pipe first.")
        folder.mkdir(parents=True, exist_ok=True)
        self.head_model.save_pretrained(folder)
        self.pieces.save(folder)

    # ------------------------------------------------------------------ serialization

    def to_bytes(self) -> bytes:
        if not self.is_loaded:
            return srsly.msgpack_dumps({})
        with tempfile.TemporaryDirectory() as tmp:
            self.save_folder(Path(tmp))
            files = {path.name: path.read_bytes() for path in Path(tmp).iterdir() if path.is_file()}
        return srsly.msgpack_dumps(files)

    def from_bytes(self, bytes_data: bytes) -> "LukeShim":
        files = _checked_files(srsly.msgpack_loads(bytes_data))
        if not files:
            self._model, self.pieces = None, None
            return self
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            self.load_folder(Path(tmp))  # the saved entity vocabulary is already pruned: as is
        return self

    def to_device(self, device_type: str, device_id: int):  # pragma: no cover - needs a GPU
        if self._model is None:
            return
        super().to_device(device_type, device_id)
        self.attach(self._model.head_model, self.pieces, device=self._model.device)  # the precision mode of the new device

    def finish_update(self, optimizer) -> None:
        if self._model is not None:
            from torch.autograd.graph import increment_version

            updated = [param for param in self._model.parameters() if param.grad is not None]
            super().finish_update(optimizer)
            # thinc's optimizer writes the new weights through numpy, in place on the CPU, which
            # torch's version counters do not see. Count the write, so that what is keyed on the
            # weights (the precision mode's inference view, fused Q/K/V, the shared-query check)
            # is built again.
            for param in updated:
                increment_version(param)

    # ------------------------------------------------------------------ calls

    def predict(self, inputs):
        from ..model.mode import call_mode  # here: importing the pipes loads no model code

        with call_mode(False):
            return super().predict(inputs)

    def begin_update(self, inputs):
        from ..model.mode import call_mode

        with call_mode(True):
            output, backprop = super().begin_update(inputs)

        def backprop_in_training_mode(grads):
            # Backward may run forward again (gradient checkpointing): in training mode too.
            with call_mode(True):
                return backprop(grads)

        return output, backprop_in_training_mode


def _checked_files(files: Any) -> Dict[str, bytes]:
    """The ``{file name: bytes}`` of :meth:`LukeShim.to_bytes`; a ValueError for anything else, before
    anything is written (a name with a folder part, ``..`` or a root would write outside the folder)."""
    fix = "these bytes are not from LukeShim.to_bytes (nlp.to_bytes), or they are corrupted"
    if not isinstance(files, dict):
        raise ValueError(f"LUKE layer bytes hold a {type(files).__name__}, not a dict of file names to bytes: {fix}.")
    for name, data in files.items():
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or any(c in name for c in "/\\\0"):
            raise ValueError(f"LUKE layer bytes name the file {name!r}, which is not a plain file name: {fix}.")
        if not isinstance(data, bytes):
            raise ValueError(f"LUKE layer bytes hold a {type(data).__name__} for the file {name!r}, not bytes: {fix}.")
    return files


_FORK_HOOK_INSTALLED = False


def _single_threaded_after_fork() -> None:
    """torch's OpenMP pool is not fork-safe: a forked child (``nlp.pipe(n_process=2)``) that
    used it would hang. Children run torch single-threaded, as one process per core intends."""
    global _FORK_HOOK_INSTALLED
    if not _FORK_HOOK_INSTALLED:
        import os

        import torch

        os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
        _FORK_HOOK_INSTALLED = True


def _use_pytorch_allocator_with_cupy() -> None:
    """As thinc's PyTorchShim does: on CupyOps, cupy allocates through PyTorch's memory pool."""
    from thinc.api import get_current_ops
    from thinc.backends import CupyOps, context_pools, set_gpu_allocator

    if CupyOps.xp is not None and isinstance(get_current_ops(), CupyOps):  # pragma: no cover - needs a GPU
        pools = context_pools.get()
        if "pytorch" not in pools:
            from cupy import get_default_memory_pool

            set_gpu_allocator("pytorch")
            get_default_memory_pool().free_all_blocks()

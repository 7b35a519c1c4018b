"""One place that turns a name into a local folder: a folder path, or a Hugging Face hub repo id
(which is which: :func:`.names.what_is`).

Downloads go through ``huggingface_hub.snapshot_download`` restricted to the files asked for.
``HF_HUB_OFFLINE`` is read at call time (huggingface_hub reads it once, at import), so setting
it later still keeps us off the network, and ``HF_HUB_CACHE`` / ``HF_HOME`` likewise; a repo that
cannot be had is one clear error (``HubUnavailableError``) saying what was tried and how to get a model.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from .names import FILE, MISSING, Source, what_is

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or huggingface_hub's own setting) forbids the network."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is an install requirement
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def resolve_folder(
    name_or_path: Union[str, Path, Source],
    *,
    allow_patterns: Sequence[str],
    what: str,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    local_files_only: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
) -> Path:
    """A local folder for ``name_or_path``: the folder itself, or the hub snapshot of the repo.

    ``name_or_path`` may be the :class:`.names.Source` already found for it. ``what`` names the
    thing for error messages ("checkpoint", "tokenizer").
    Raises FileNotFoundError / NotADirectoryError for bad local paths and HubUnavailableError
    (an OSError naming the repo id, the reason and how to get a model) when a repo cannot be had.
    """
    source = name_or_path if isinstance(name_or_path, Source) else what_is(name_or_path)
    if source.is_folder:
        return source.path
    name = source.name
    if source.kind == FILE:
        raise NotADirectoryError(
            f"{name!r} is a file; pass the {what} *folder* (the Hugging Face layout: config.json, "
            "weights, tokenizer files, entity_vocab.json)."
        )
    if source.kind == MISSING:
        raise FileNotFoundError(
            f"The {what} folder {name!r} was not found, and it is not a hub repo id "
            "(those look like 'studio-ousia/luke-base'). Check the path."
        )
    offline = hub_offline() if local_files_only is None else bool(local_files_only)
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id=name,
            revision=revision,
            cache_dir=str(cache) if cache is not None else None,
            local_files_only=offline,
            token=token,
            allow_patterns=list(allow_patterns),
        )
    except Exception as err:  # huggingface_hub raises many error types; all mean "not available"
        reason = _unavailable_reason(err, offline=offline, local_files_only=local_files_only, revision=revision, cache=cache)
        raise HubUnavailableError(name, what, reason, err) from None
    return Path(folder)


class HubUnavailableError(OSError):
    """A hub repo that cannot be had (offline and not cached, no network, unknown repo).

    The message is self-sufficient, on one line: what was tried, why it failed, and how to get
    or make a model. The huggingface_hub error is kept in ``hub_error`` (not chained, so that
    tracebacks stay short).
    """

    def __init__(self, repo_id: str, what: str, reason: str, hub_error: Optional[BaseException] = None):
        self.repo_id = repo_id
        self.hub_error = hub_error
        super().__init__(
            f"Cannot get the {what} {repo_id!r} from the Hugging Face hub: {reason}. {get_a_model_hint(repo_id)}"
        )


def get_a_model_hint(repo_id: str) -> str:
    """How to get or make a model when the hub cannot give one (one sentence, for error messages)."""
    return (
        f"To get one: download it once while online (`hf download {repo_id}`, with older huggingface_hub "
        f"`huggingface-cli download {repo_id}`, or run this once online; the hub cache is then used offline), "
        "or pass a local folder, or make one offline: `python -m spacy_luke convert-encoder ENCODER_DIR LUKE_DIR` "
        "turns a local BERT / RoBERTa / XLM-R folder into LUKE (add `--entities TITLES_OR_ALIASES_FILE` for an "
        "entity table the entity linker and build-kb can use), and spacy-luke's project/ "
        "(`spacy project run all`) trains luke_ner on CoNLL-2003 from MiniLM."
    )


def hub_cache_dir() -> Optional[Path]:
    """The hub cache folder from ``HF_HUB_CACHE`` / ``HF_HOME`` as set *now* (huggingface_hub reads
    them once, at import); ``None`` leaves the choice to huggingface_hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None


def _default_cache() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        return "the Hugging Face cache"
    return str(constants.HF_HUB_CACHE)


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _unavailable_reason(
    err: BaseException, *, offline: bool, local_files_only: Optional[bool], revision: Optional[str], cache: Optional[Path]
) -> str:
    """Why the repo could not be had, in words (no huggingface_hub traceback)."""
    where = f"the local Hugging Face cache ({cache if cache is not None else _default_cache()})"
    kind = type(err).__name__
    names = {cls.__name__ for cls in type(err).__mro__}
    if offline:
        switch = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1"
        return f"the hub is offline ({switch}) and the repo is not in {where}"
    if "OfflineModeIsEnabled" in names:
        return f"huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when it was imported) and the repo is not in {where}"
    if "GatedRepoError" in names:
        return "the repo is gated: accept its terms on huggingface.co and log in (`hf auth login`)"
    if "RepositoryNotFoundError" in names:
        return "no such repo on the hub (or it is private: log in with `hf auth login`); check the repo id"
    if "RevisionNotFoundError" in names:
        return f"the repo has no revision {revision!r}"
    if "LocalEntryNotFoundError" in names or kind in ("ConnectionError", "ConnectError", "Timeout", "ConnectTimeout", "ReadTimeout"):
        return f"the hub could not be reached (no network?) and the repo is not in {where}"
    return f"{_first_line(err)} (and the repo is not in {where}, or is incomplete there)"

"""Reading back the DocBin shards of ``annotate --format docbin``: :func:`read_docbin`.

A shard stores the docs with their user data (``store_user_data=True``), and the LUKE pipes'
values (``Span._.luke_score``, ``luke_types``, ``luke_kb_scores``, ``luke_vector``,
``Doc._.luke_relations``) are custom extensions that must be registered before spaCy restores
them (else spaCy's E046). :func:`read_docbin` registers them (no model is loaded) and reads a
shard, or every complete shard of an output folder in order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

from .job import read_manifest


def read_docbin(path: Union[str, Path], pipeline: Any = None) -> Iterator[Any]:
    """The Docs of a DocBin shard (``part-00000.spacy``) or of an annotate output folder (all its
    complete ``part-*.spacy`` shards, in order), with the LUKE pipes' extension values.

    pipeline: the ``Language`` (or its ``Vocab``) to read the docs into, e.g. the pipeline that
    annotated them; default: a blank pipeline of the job's language (from the folder's manifest;
    "xx" for a lone shard).
    """
    from spacy.tokens import DocBin

    from ..pipeline._shared.extensions import install_all_extensions

    shards = _shards(Path(path))
    install_all_extensions()
    vocab = _vocab(pipeline, Path(path))
    for shard in shards:
        yield from DocBin(store_user_data=True).from_disk(shard).get_docs(vocab)


def _shards(path: Path) -> List[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such DocBin shard or annotate output folder.")
    shards = sorted(path.glob("part-*.spacy"))
    if not shards:
        raise FileNotFoundError(
            f"{path} holds no DocBin shard (part-*.spacy): annotate writes them with --format docbin, "
            "and a shard appears when it is complete."
        )
    return shards


def _vocab(pipeline: Any, path: Path):
    if pipeline is None:
        import spacy

        return spacy.blank(_job_lang(path) or "xx").vocab
    vocab = getattr(pipeline, "vocab", pipeline)
    if not hasattr(vocab, "strings"):
        raise TypeError(f"read_docbin: pipeline must be a spaCy Language or Vocab, got {type(pipeline).__name__}.")
    return vocab


def _job_lang(path: Path) -> Optional[str]:
    folder = path if path.is_dir() else path.parent
    manifest = read_manifest(folder) if (folder / "manifest.json").is_file() else None
    lang = (manifest or {}).get("job", {}).get("lang")
    return lang if isinstance(lang, str) and lang else None

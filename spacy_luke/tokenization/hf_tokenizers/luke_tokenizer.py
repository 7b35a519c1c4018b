"""The LUKE tokenizer classes, one per word-piece model, and picking the right one for a folder.

- :class:`LukeTokenizer`: byte-level BPE (``vocab.json`` + ``merges.txt``);
- :class:`MLukeTokenizer`: sentencepiece (``sentencepiece.bpe.model``);
- :class:`TokenizerJsonLukeTokenizer`: a ``tokenizer.json`` (LUKE models built from BERT-family encoders);
- :func:`load_tokenizer`: the tokenizer of any LUKE folder or hub repo, of the class its files call for.

What they share (settings, special tokens, entities, the transformers-compatible call) is
:class:`~spacy_luke.tokenization.hf_tokenizers.entity_tokenizer.EntityAwareTokenizer`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from ..subwords.byte_level_bpe import ByteLevelBPE
from ..subwords.files import require_file, resolve_tokenizer_folder
from ..subwords.sentencepiece_bpe import SentencePieceBPE
from ..subwords.word_pieces import WordPieceModel
from .encoding import LukeEncoding
from .entity_tokenizer import EntityAwareTokenizer
from .entity_vocab import EntityVocab


class LukeTokenizer(EntityAwareTokenizer):
    """LUKE tokenizer: byte-level BPE word pieces (``vocab.json`` + ``merges.txt``) and entities.

    Build it with :meth:`from_pretrained`; calling it gives what transformers'
    ``LukeTokenizer`` gives with the same settings (see :mod:`~spacy_luke.tokenization.hf_tokenizers.entity_tokenizer`
    for the few deliberate differences).
    """

    _extra_settings = ("add_prefix_space",)

    @classmethod
    def _load_word_pieces(cls, folder: Path, add_prefix_space: bool) -> WordPieceModel:
        if not (folder / "vocab.json").is_file() and (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"{folder} has no vocab.json / merges.txt but a tokenizer.json (a LUKE model built from a "
                "BERT-style encoder?). Load it with spacy_luke.tokenization.load_tokenizer(folder), which picks "
                "the right tokenizer class for any LUKE folder, or TokenizerJsonLukeTokenizer.from_pretrained(folder)."
            )
        vocab_file = require_file(folder, ["vocab.json"], "LUKE word vocabulary")
        merges_file = require_file(folder, ["merges.txt"], "LUKE BPE merges")
        return ByteLevelBPE(vocab_file, merges_file, add_prefix_space=add_prefix_space)

    def __init__(self, word_pieces: WordPieceModel, entity_vocab: EntityVocab, **settings: Any):
        if "add_prefix_space" not in settings:
            settings["add_prefix_space"] = bool(getattr(word_pieces, "add_prefix_space", False))
        super().__init__(word_pieces, entity_vocab, **settings)


class MLukeTokenizer(EntityAwareTokenizer):
    """mLUKE tokenizer: sentencepiece word pieces (``sentencepiece.bpe.model``, fairseq ids).

    Build it with :meth:`from_pretrained`; calling it gives what transformers'
    ``MLukeTokenizer`` gives with the same settings. Entity titles are looked up exactly as
    given, so pass them with their language prefix (``"en:Japan"``).
    """

    @classmethod
    def _load_word_pieces(cls, folder: Path, add_prefix_space: bool) -> WordPieceModel:
        model_file = require_file(folder, ["sentencepiece.bpe.model"], "mLUKE sentencepiece model")
        return SentencePieceBPE(model_file)

    def __init__(self, word_pieces: WordPieceModel, entity_vocab: EntityVocab, **settings: Any):
        if settings.pop("add_prefix_space", False):
            raise ValueError("add_prefix_space is a byte-level BPE setting; mLUKE's sentencepiece has no use for it.")
        super().__init__(word_pieces, entity_vocab, **settings)

    def __call__(self, *args: Any, **kwargs: Any) -> LukeEncoding:  # noqa: D102 - same as the base
        if kwargs.get("add_prefix_space"):
            raise ValueError("add_prefix_space is a byte-level BPE setting; mLUKE's sentencepiece has no use for it.")
        return super().__call__(*args, **kwargs)

    __call__.__doc__ = EntityAwareTokenizer.__call__.__doc__


class TokenizerJsonLukeTokenizer(EntityAwareTokenizer):
    """LUKE entity inputs over the word pieces of a ``tokenizer.json`` (e.g. BERT's WordPiece).

    The tokenizer of LUKE models built from a BERT-family encoder by
    :func:`spacy_luke.convert.convert_encoder_to_luke`: word pieces come from the
    encoder's ``tokenizer.json`` (its normalizer, e.g. lowercasing, included), special tokens
    from ``tokenizer_config.json`` (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``), the
    markers ``<ent>`` / ``<ent2>`` from ``added_tokens.json``. Text pairs are laid out as the
    ``tokenizer.json`` post-processor says (BERT: ``[CLS] A [SEP] B [SEP]``, type 1 for ``B``).
    Tasks, entities and the call API are those of :class:`LukeTokenizer`.
    """

    @classmethod
    def _load_word_pieces(cls, folder: Path, add_prefix_space: bool) -> WordPieceModel:
        from ..subwords.tokenizer_json import TokenizerJsonPieces

        return TokenizerJsonPieces(require_file(folder, ["tokenizer.json"], "word tokenizer (tokenizer.json)"))

    def __init__(self, word_pieces: WordPieceModel, entity_vocab: EntityVocab, **settings: Any):
        if settings.pop("add_prefix_space", False):
            raise ValueError(
                "add_prefix_space is a byte-level BPE setting; a tokenizer.json word tokenizer follows its own "
                "pre-tokenizer."
            )
        self.pair_separators = int(getattr(word_pieces, "pair_separators", 1))
        self.pair_token_type_id = int(getattr(word_pieces, "pair_token_type_id", 0))
        super().__init__(word_pieces, entity_vocab, **settings)


def tokenizer_class_for(folder: Union[str, Path]) -> type:
    """The tokenizer class for the word-tokenizer files in ``folder``.

    ``vocab.json`` + ``merges.txt``: :class:`LukeTokenizer`; ``sentencepiece.bpe.model``:
    :class:`MLukeTokenizer`; otherwise ``tokenizer.json``: :class:`TokenizerJsonLukeTokenizer`.
    """
    folder = Path(folder)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return LukeTokenizer
    if (folder / "sentencepiece.bpe.model").is_file():
        return MLukeTokenizer
    if (folder / "tokenizer.json").is_file():
        return TokenizerJsonLukeTokenizer
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise FileNotFoundError(
        f"{folder} has no word tokenizer: expected vocab.json + merges.txt (LUKE), sentencepiece.bpe.model "
        f"(mLUKE) or tokenizer.json (a LUKE model built from another encoder); it holds {present}."
    )


def load_tokenizer(
    name_or_path: Union[str, Path],
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    local_files_only: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
    **settings: Any,
) -> EntityAwareTokenizer:
    """The tokenizer of any LUKE folder or hub repo, of the class its files call for.

    LUKE (``vocab.json`` + ``merges.txt``), mLUKE (``sentencepiece.bpe.model``) or a LUKE model
    converted from a BERT-family encoder (``tokenizer.json``); see :func:`tokenizer_class_for`.
    ``settings`` are passed to that class's ``from_pretrained`` (``task``, ``max_entity_length``, ...).
    """
    folder = resolve_tokenizer_folder(
        name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )
    tokenizer = tokenizer_class_for(folder).from_pretrained(folder, **settings)
    tokenizer.name_or_path = str(name_or_path)
    return tokenizer

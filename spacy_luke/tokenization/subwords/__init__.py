"""Subword models: plain text to word-piece ids, and the tokenizer files they are read from.

The bottom of ``tokenization/``; it imports nothing from :mod:`..hf_tokenizers` or
:mod:`..doc_inputs`.

- :mod:`.word_pieces`: the :class:`WordPieceModel` interface (and its base over a ``tokenizers``
  ``Tokenizer``);
- :mod:`.byte_level_bpe`: :class:`ByteLevelBPE` (``vocab.json`` + ``merges.txt``, LUKE / RoBERTa);
- :mod:`.sentencepiece_bpe`: :class:`SentencePieceBPE` (``sentencepiece.bpe.model``, mLUKE, fairseq ids);
- :mod:`.tokenizer_json`: :class:`TokenizerJsonPieces` (a ``tokenizer.json``, e.g. BERT's WordPiece);
- :mod:`.added_tokens`: the unsplittable special / added tokens and the text cut around them;
- :mod:`.files`: finding a tokenizer's files and reading its settings, with errors that name the file.
"""
from .added_tokens import AddedToken, AddedTokenSplitter
from .byte_level_bpe import ByteLevelBPE
from .files import TokenizerFileError
from .sentencepiece_bpe import SentencePieceBPE
from .tokenizer_json import TokenizerJsonPieces
from .word_pieces import TokenizersLibraryPieces, WordPieceModel

__all__ = [
    "AddedToken",
    "AddedTokenSplitter",
    "ByteLevelBPE",
    "SentencePieceBPE",
    "TokenizerFileError",
    "TokenizerJsonPieces",
    "TokenizersLibraryPieces",
    "WordPieceModel",
]

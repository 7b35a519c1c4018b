"""Word pieces from a ``tokenizers`` ``tokenizer.json`` (WordPiece for BERT, or any other model).

This is the word tokenizer of LUKE models built from a non-LUKE encoder
(:func:`spacy_luke.convert.convert_encoder_to_luke`): the encoder's own
``tokenizer.json`` is used as it is, with its normalizer (lowercasing, accent stripping) and
pre-tokenizer, but with its truncation, padding and post-processor switched off: the
special tokens (``[CLS]``/``[SEP]`` or ``<s>``/``</s>``), the entity markers and the entities
are added one layer up, by :class:`~spacy_luke.tokenization.TokenizerJsonLukeTokenizer`.

What the post-processor would have done is still read, to lay out text pairs the way the
encoder was trained: ``[CLS] A [SEP] B [SEP]`` with token type 1 for ``B`` (BERT) or
``<s> A </s></s> B </s>`` with type 0 (RoBERTa).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .word_pieces import TokenizersLibraryPieces

#: Name of the file this module reads.
TOKENIZER_JSON = "tokenizer.json"


def pair_layout(post_processor: Optional[Dict[str, Any]]) -> Tuple[int, int]:
    """``(separators between A and B, token type id of B)`` from a tokenizer.json post-processor.

    ``BertProcessing``: ``(1, 1)``; ``RobertaProcessing``: ``(2, 0)``; ``TemplateProcessing``:
    read from its ``pair`` template; anything else (or none): ``(1, 0)``.
    """
    if not post_processor:
        return 1, 0
    kind = post_processor.get("type")
    if kind == "BertProcessing":
        return 1, 1
    if kind == "RobertaProcessing":
        return 2, 0
    if kind == "Sequence":
        for processor in post_processor.get("processors") or ():
            if processor.get("type") in ("BertProcessing", "RobertaProcessing", "TemplateProcessing"):
                return pair_layout(processor)
        return 1, 0
    if kind == "TemplateProcessing":
        separators, type_b, seen_a = 0, 0, False
        for item in post_processor.get("pair") or ():
            if "Sequence" in item:
                if item["Sequence"].get("id") == "A":
                    seen_a = True
                else:
                    type_b = int(item["Sequence"].get("type_id", 0))
                    break
            elif "SpecialToken" in item and seen_a:
                separators += 1
        return max(separators, 1), type_b
    return 1, 0


class TokenizerJsonPieces(TokenizersLibraryPieces):
    """The word-piece model of a ``tokenizer.json``, without its special-token post-processing.

    Args:
        path: the ``tokenizer.json`` file, or its content already parsed (a dict).

    ``encode_word(word, after_space)`` encodes ``" " + word`` after whitespace and ``word``
    otherwise: exact for WordPiece (whose pieces do not depend on whitespace; a token alone
    starts a new word, so its first piece never carries ``##``) and for byte-level BPE.
    A non-space word the normalizer erases entirely (a lone soft hyphen, a control character)
    gets the unknown piece, so that every spaCy token a span covers owns at least one piece.
    """

    prefix_at_start = False

    def __init__(self, path: Union[str, Path, Dict[str, Any]]):
        from tokenizers import Tokenizer

        self.path = None if isinstance(path, dict) else Path(path)
        source = "the given tokenizer.json data" if self.path is None else str(self.path)
        try:
            if self.path is None:
                data = path
            else:
                with self.path.open(encoding="utf8") as f:
                    data = json.load(f)
            tokenizer = Tokenizer.from_str(json.dumps(data))
        except FileNotFoundError:
            raise FileNotFoundError(f"No {TOKENIZER_JSON} at {self.path}.") from None
        except Exception as err:
            raise ValueError(
                f"{source} is not a tokenizer.json the `tokenizers` library can read ({type(err).__name__}: {err})."
            ) from None
        # Inputs are cut into windows by the caller; specials are added by the caller.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        model = data.get("model") or {}
        #: The tokenizers model type: "WordPiece", "BPE", "Unigram" or "WordLevel".
        self.model_type: str = str(model.get("type", ""))
        self.pair_separators, self.pair_token_type_id = pair_layout(data.get("post_processor"))
        unk = model.get("unk_token")
        if unk is None and self.model_type == "Unigram" and model.get("unk_id") is not None:
            self.unk_id: Optional[int] = int(model["unk_id"])
        else:
            self.unk_id = tokenizer.token_to_id(unk) if isinstance(unk, str) else None

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def encode_word(self, word: str, after_space: bool) -> List[int]:
        ids = self.encode(" " + word if after_space else word)
        if not ids and word and not word.isspace() and self.unk_id is not None:
            return [self.unk_id]
        return ids

    def token_to_id(self, token: str) -> Optional[int]:
        return self._tokenizer.token_to_id(token)

    def id_to_token(self, index: int) -> Optional[str]:
        return self._tokenizer.id_to_token(index)

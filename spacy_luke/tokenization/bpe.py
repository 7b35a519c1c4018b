"""Byte-level BPE (GPT-2 / RoBERTa / LUKE) word pieces, run by the ``tokenizers`` library."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .word_pieces import TokenizersLibraryPieces


class ByteLevelBPE(TokenizersLibraryPieces):
    """``vocab.json`` + ``merges.txt`` byte-level BPE.

    Args:
        vocab_file: the ``vocab.json`` of the checkpoint (piece string -> id).
        merges_file: the ``merges.txt`` of the checkpoint (one merge per line, after a
            ``#version`` header).
        add_prefix_space: encode the first word of a text as if a space preceded it (False
            for LUKE, as for RoBERTa: ``"Hello"`` and ``" Hello"`` are different pieces).
        unk_token: the piece used for bytes missing from the vocabulary.
    """

    def __init__(
        self,
        vocab_file: Union[str, Path],
        merges_file: Union[str, Path],
        *,
        add_prefix_space: bool = False,
        unk_token: Optional[str] = "<unk>",
    ):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        with open(vocab_file, encoding="utf8") as f:
            self.vocab: Dict[str, int] = json.load(f)
        self._id_to_token = {idx: token for token, idx in self.vocab.items()}
        model = models.BPE.from_file(
            str(vocab_file),
            str(merges_file),
            unk_token=unk_token if unk_token in self.vocab else None,
        )
        tokenizer = Tokenizer(model)
        # The prefix space is added by the caller (it depends on where a text is cut),
        # so the pre-tokenizer never adds one itself.
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        self._tokenizer = tokenizer
        self.add_prefix_space = add_prefix_space
        self.prefix_at_start = add_prefix_space

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_word(self, word: str, after_space: bool) -> List[int]:
        return self.encode(" " + word if after_space else word)

    def encode_words(self, words: Sequence[str], after_spaces: Sequence[bool]) -> List[List[int]]:
        """:meth:`encode_word` of each word, the words after a space encoded as one text.

        The byte-level pre-tokenizer never joins a space-prefixed word with the next one (its
        patterns hold at most one leading space, or whitespace only), so ``" w1 w2 ..."`` gives
        the pieces of each ``" w"`` in order; the pieces are split back by their offsets. Words
        with whitespace inside, or not after a space, are encoded one by one.
        """
        out: List[List[int]] = [[] for _ in words]
        joined = [i for i, (word, after_space) in enumerate(zip(words, after_spaces))
                  if after_space and word and word.split() == [word]]  # no whitespace inside
        if len(joined) > 1:
            starts = np.cumsum([0] + [len(words[i]) + 1 for i in joined[:-1]])
            encoding = self._tokenizer.encode("".join(" " + words[i] for i in joined), add_special_tokens=False)
            piece_starts = np.fromiter((start for start, _ in encoding.offsets), dtype=np.int64, count=len(encoding.ids))
            owner = np.searchsorted(starts, piece_starts, side="right") - 1
            bounds = np.searchsorted(owner, np.arange(len(joined) + 1)).tolist()
            ids = encoding.ids
            for k, i in enumerate(joined):
                out[i] = ids[bounds[k] : bounds[k + 1]]
            done = set(joined)
        else:
            done = set()
        rest = [i for i in range(len(words)) if i not in done]
        texts = [" " + words[i] if after_spaces[i] else words[i] for i in rest]
        for i, ids in zip(rest, self.encode_batch(texts)):
            out[i] = ids
        return out

    def token_to_id(self, token: str) -> Optional[int]:
        return self.vocab.get(token)

    def id_to_token(self, index: int) -> Optional[str]:
        return self._id_to_token.get(index)

"""Byte-level BPE (GPT-2 / RoBERTa / LUKE) word pieces, run by the ``tokenizers`` library."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .files import bad_file, load_json_object
from .word_pieces import TokenizersLibraryPieces


def _read_vocab(path: Union[str, Path]) -> Dict[str, int]:
    """``vocab.json``: piece -> non-negative integer id, each id once."""
    vocab = load_json_object(path, '{"<s>": 0, "<pad>": 1, ...}')
    if not vocab:
        raise bad_file(path, "holds no word pieces")
    seen: Dict[int, str] = {}
    for piece, idx in vocab.items():
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            raise bad_file(path, f"piece {piece!r} has id {idx!r}; ids must be non-negative integers")
        if idx in seen:
            raise bad_file(path, f"pieces {seen[idx]!r} and {piece!r} share id {idx}")
        seen[idx] = piece
    return vocab


def _check_merges(path: Union[str, Path]) -> None:
    """``merges.txt``: UTF-8, an optional ``#version`` line, then one ``left right`` merge per line."""
    try:
        with open(path, encoding="utf8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise bad_file(path, f"not UTF-8 text ({err})") from None
    merges = 0
    for lineno, line in enumerate(lines, 1):
        if (lineno == 1 and line.startswith("#version")) or not line:
            continue
        if len(line.split(" ")) != 2 or "" in line.split(" "):
            raise bad_file(path, f"line {lineno} is {line[:60]!r}, not a merge of two pieces ('left right')")
        merges += 1
    if not merges:
        raise bad_file(path, "holds no merges")


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

        self.vocab: Dict[str, int] = _read_vocab(vocab_file)
        self._id_to_token = {idx: token for token, idx in self.vocab.items()}
        _check_merges(merges_file)
        try:
            model = models.BPE.from_file(
                str(vocab_file),
                str(merges_file),
                unk_token=unk_token if unk_token in self.vocab else None,
            )
        except Exception as err:  # tokenizers raises a bare Exception naming neither file
            raise bad_file(
                merges_file, f"does not fit {Path(vocab_file).name} ({err}); merges.txt and vocab.json must come from one tokenizer"
            ) from None
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

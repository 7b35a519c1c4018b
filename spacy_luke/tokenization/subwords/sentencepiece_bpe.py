"""XLM-RoBERTa style sentencepiece word pieces (mLUKE), with the fairseq id layout.

The fairseq layout puts ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, shifts every
sentencepiece id by one, maps sentencepiece's own unknown (id 0) to ``<unk>``=3, and puts
``<mask>`` after the last piece, exactly as transformers' ``XLMRobertaTokenizer`` and
``MLukeTokenizer`` do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .files import bad_file
from .word_pieces import Offsets, WordPieceModel

FAIRSEQ_OFFSET = 1
FAIRSEQ_SPECIALS: Dict[str, int] = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
SPIECE_UNDERLINE = "\u2581"
# Appending this to a serialized ModelProto merges ``normalizer_spec { add_dummy_prefix: false }``
# into it (protobuf merges repeated occurrences of a message field): a processor that does not
# put "▁" before the first word, for words that follow another word without a space.
_NO_DUMMY_PREFIX = b"\x1a\x02\x18\x00"


class SentencePieceBPE(WordPieceModel):
    """``sentencepiece.bpe.model`` with fairseq ids.

    Args:
        model_file: the sentencepiece model of the checkpoint.
    """

    prefix_at_start = True

    def __init__(self, model_file: Union[str, Path]):
        import sentencepiece as spm

        self.model_file = str(model_file)
        try:
            self._sp = spm.SentencePieceProcessor(model_file=self.model_file)
        except (RuntimeError, OSError) as err:  # "INTERNAL: could not parse ModelProto from ..."
            raise bad_file(self.model_file, f"not a sentencepiece model sentencepiece can load ({err})") from None
        self._sp_glued = spm.SentencePieceProcessor()
        self._sp_glued.LoadFromSerializedProto(self._sp.serialized_model_proto() + _NO_DUMMY_PREFIX)
        self.mask_id = len(self._sp) + FAIRSEQ_OFFSET
        self.unk_id = FAIRSEQ_SPECIALS["<unk>"]
        self._specials = dict(FAIRSEQ_SPECIALS, **{"<mask>": self.mask_id})
        self._special_ids = {idx: token for token, idx in self._specials.items()}

    @property
    def vocab_size(self) -> int:
        return len(self._sp) + FAIRSEQ_OFFSET + 1

    def _to_fairseq(self, sp_ids: Sequence[int]) -> List[int]:
        unk = self.unk_id
        return [i + FAIRSEQ_OFFSET if i else unk for i in sp_ids]

    def encode(self, text: str) -> List[int]:
        if not text:
            return []
        return self._to_fairseq(self._sp.encode(text))

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        return [self._to_fairseq(ids) for ids in self._sp.encode(list(texts))]

    def encode_with_offsets(self, text: str) -> Tuple[List[int], Offsets]:
        if not text:
            return [], []
        try:
            proto = self._sp.encode(text, out_type="proto")
        except ImportError:  # the proto output needs the protobuf package
            return self._encode_with_guessed_offsets(text)
        char_at_byte = _byte_to_char_index(text)
        ids = self._to_fairseq([piece.id for piece in proto.pieces])
        offsets = [(char_at_byte[p.begin], char_at_byte[p.end]) for p in proto.pieces]
        return ids, offsets

    def _encode_with_guessed_offsets(self, text: str) -> Tuple[List[int], Offsets]:
        """Offsets found by walking the text (exact unless normalization changed characters).

        As sentencepiece reports them, a ``▁`` piece's span includes the whitespace it stands for.
        """
        pieces = self._sp.encode(text, out_type=str)
        offsets: Offsets = []
        cursor = 0
        for piece in pieces:
            start = cursor
            if piece.startswith(SPIECE_UNDERLINE):
                while cursor < len(text) and text[cursor].isspace():
                    cursor += 1
            surface = piece.replace(SPIECE_UNDERLINE, "")
            if surface and text.startswith(surface, cursor):
                cursor += len(surface)
            offsets.append((start, cursor))
        return self._to_fairseq([self._sp.piece_to_id(p) for p in pieces]), offsets

    def encode_word(self, word: str, after_space: bool) -> List[int]:
        if not word:
            return []
        processor = self._sp if after_space else self._sp_glued
        return self._to_fairseq(processor.encode(word))

    def encode_words(self, words: Sequence[str], after_spaces: Sequence[bool]) -> List[List[int]]:
        out: List[List[int]] = [[] for _ in words]
        for processor, flag in ((self._sp, True), (self._sp_glued, False)):
            wanted = [i for i, (word, after_space) in enumerate(zip(words, after_spaces)) if word and bool(after_space) == flag]
            if wanted:
                for i, ids in zip(wanted, processor.encode([words[i] for i in wanted])):
                    out[i] = self._to_fairseq(ids)
        return out

    def token_to_id(self, token: str) -> Optional[int]:
        if token in self._specials:
            return self._specials[token]
        sp_id = self._sp.piece_to_id(token)
        return sp_id + FAIRSEQ_OFFSET if sp_id else None

    def id_to_token(self, index: int) -> Optional[str]:
        if index in self._special_ids:
            return self._special_ids[index]
        if 0 < index - FAIRSEQ_OFFSET < len(self._sp):
            return self._sp.id_to_piece(index - FAIRSEQ_OFFSET)
        return None

    def decode(self, ids: Sequence[int]) -> str:
        """The text of a sequence of piece ids (special ids dropped)."""
        return self._sp.decode([i - FAIRSEQ_OFFSET for i in ids if i not in self._special_ids])


def _byte_to_char_index(text: str) -> List[int]:
    """For each UTF-8 byte position of ``text`` (and its end), the char index it falls in."""
    index: List[int] = []
    for char_index, char in enumerate(text):
        index.extend([char_index] * len(char.encode("utf8")))
    index.append(len(text))
    return index

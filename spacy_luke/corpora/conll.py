"""Reading CoNLL-2003 style NER files into spaCy Docs.

One token per line, its NER tag in the second column (IOB1 or IOB2; further columns are
ignored), a blank line between sentences, ``-DOCSTART-`` lines between documents when present.
Consecutive sentences are grouped into docs of up to ``n_sents`` sentences (never across a
``-DOCSTART-``), with sentence boundaries set, so the pipes get document context.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Tuple, Union

from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

Sentence = List[Tuple[str, str]]


def _valid_tag(tag: str) -> bool:
    return tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)


def _decode_line(raw: bytes, path: Union[str, Path], lineno: int) -> str:
    try:
        return raw.decode("utf8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
            "convert it first, e.g. with iconv -f latin1 -t utf-8"
        ) from None


def read_conll(path: Union[str, Path]) -> Iterator[List[Sentence]]:
    """Yield documents (lists of sentences of ``(token, tag)``) from a CoNLL file.

    A line that is not UTF-8, lacks a tag or has a tag other than O / B-X / I-X is a
    ``ValueError`` naming the file and line.
    """
    document: List[Sentence] = []
    sentence: Sentence = []
    with Path(path).open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode_line(raw, path, lineno)
            parts = line.split()
            if not parts:
                if sentence:
                    document.append(sentence)
                    sentence = []
                continue
            if parts[0] == "-DOCSTART-":
                if sentence:
                    document.append(sentence)
                    sentence = []
                if document:
                    yield document
                    document = []
                continue
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'token TAG ...', got {line.strip()!r}.")
            if not _valid_tag(parts[1]):
                raise ValueError(f"{path}:{lineno}: unexpected NER tag {parts[1]!r}: expected O, B-X or I-X (IOB1 or IOB2).")
            sentence.append((parts[0], parts[1]))
    if sentence:
        document.append(sentence)
    if document:
        yield document


def _entity_spans(tags: List[str]) -> List[Tuple[int, int, str]]:
    """``(start, end, label)`` from IOB1 or IOB2 tags."""
    spans = []
    start, label = None, None
    for i, tag in enumerate(tags + ["O"]):
        if not _valid_tag(tag):
            raise ValueError(f"Unexpected NER tag {tag!r}: expected O, B-X or I-X.")
        prefix, _, kind = tag.partition("-")
        begins = prefix == "B" or (prefix == "I" and kind != label)
        if start is not None and (prefix == "O" or begins):
            spans.append((start, i, label))
            start, label = None, None
        if prefix in ("B", "I") and start is None:
            start, label = i, kind
    return spans


def sentences_to_doc(vocab: Vocab, sentences: List[Sentence]) -> Doc:
    words = [token for sentence in sentences for token, _ in sentence]
    sent_starts = [i == 0 for sentence in sentences for i in range(len(sentence))]
    doc = Doc(vocab, words=words, sent_starts=sent_starts)
    ents = []
    offset = 0
    for sentence in sentences:
        for start, end, label in _entity_spans([tag for _, tag in sentence]):
            ents.append(Span(doc, offset + start, offset + end, label=label))
        offset += len(sentence)
    doc.ents = ents
    return doc


def conll_to_docs(path: Union[str, Path], vocab: Vocab, *, n_sents: int = 10, limit: int = 0) -> List[Doc]:
    """Docs of up to ``n_sents`` consecutive sentences; ``limit`` > 0 keeps that many sentences."""
    if n_sents < 1:
        raise ValueError(f"n_sents must be at least 1, got {n_sents}.")
    docs, seen = [], 0
    for document in read_conll(path):
        if limit:
            document = document[: max(0, limit - seen)]
        for i in range(0, len(document), n_sents):
            docs.append(sentences_to_doc(vocab, document[i : i + n_sents]))
        seen += len(document)
        if limit and seen >= limit:
            break
    return docs


def convert_conll(input_path: Union[str, Path], output_path: Union[str, Path], *, n_sents: int = 10, limit: int = 0) -> int:
    """Write a CoNLL file as a ``.spacy`` DocBin; returns the number of docs (an empty file is a ValueError)."""
    docs = conll_to_docs(input_path, Vocab(), n_sents=n_sents, limit=limit)
    if not docs:
        raise ValueError(f"{input_path}: no sentences to convert (the file is empty or has only -DOCSTART- lines).")
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs).to_disk(output_path)
    return len(docs)

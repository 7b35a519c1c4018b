"""``spacy-luke.JsonlCorpus.v1``: a reader for entity typing and relation extraction data.

One JSON object per line::

    {"text": "Steve Jobs founded Apple .",
     "entities": [{"start": 0, "end": 10, "label": "PER", "types": ["person", "entrepreneur"], "kb_id": "Steve Jobs"},
                  {"start": 19, "end": 24, "label": "ORG"}],
     "relations": [{"head": 0, "tail": 1, "label": "org:founded_by(e2,e1)"}]}

- ``entities``: character offsets (``end`` exclusive, on token boundaries of the pipeline's
  tokenizer), an optional entity ``label``, optional ``types`` (the gold types for
  ``luke_entity_typer``: a list, or a ``{type: probability}`` dict) and an optional ``kb_id``
  (the gold entity for ``luke_entity_linker``: a title, or the KB's id). Entities become the
  reference ``doc.ents`` (overlapping ones go to ``doc.spans["luke_entities"]`` only) and their
  types ``Span._.luke_types``.
- ``relations``: ``head`` / ``tail`` index ``entities``; the gold ``Doc._.luke_relations``
  (score 1.0). Pairs not listed count as ``no_relation`` (the pipe's ``negative_label``).

``use_gold_ents = true`` (the default) also puts the gold entities (spans and labels, never
their kb_ids: linking them is the linker's task) into the *predicted* docs,
so that training and evaluation of a relation extractor / typer see gold entities; set it to
false to evaluate on the entities the pipeline itself predicts (``luke_ner`` before it).
A ``.spacy`` file (DocBin saved with ``store_user_data=True``) works too: its docs are the
references, read the same way.
"""

from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import filter_spans, registry

from .extensions import install_relation_extensions, install_typer_extensions
from .._relations.records import sort_relations

ENTITIES_KEY = "luke_entities"


def _doc_from_record(nlp: Language, record: dict, line: int, path: Path) -> Doc:
    if "text" not in record:
        raise ValueError(f"{path}:{line}: a record needs a 'text' field; got keys {sorted(record)}.")
    doc = nlp.make_doc(record["text"])
    spans: List[Span] = []
    for k, ent in enumerate(record.get("entities") or []):
        try:
            start, end = int(ent["start"]), int(ent["end"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}:{line}: entity {k} needs integer 'start' and 'end' character offsets; got {ent!r}.") from None
        span = doc.char_span(start, end, label=str(ent.get("label") or ""), kb_id=str(ent.get("kb_id") or ""))
        if span is None:
            raise ValueError(
                f"{path}:{line}: entity {k} [{start}, {end}) = {doc.text[start:end]!r} does not start and end on token "
                f"boundaries of {[t.text for t in doc]}; fix the offsets."
            )
        types = ent.get("types")
        if types is not None:
            span._.luke_types = {str(t): 1.0 for t in types} if isinstance(types, list) else {str(t): float(p) for t, p in types.items()}
        spans.append(span)
    doc.spans[ENTITIES_KEY] = spans
    doc.ents = filter_spans(spans)
    relations = []
    for k, rel in enumerate(record.get("relations") or []):
        try:
            head, tail = spans[int(rel["head"])], spans[int(rel["tail"])]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError(f"{path}:{line}: relation {k} needs 'head' and 'tail' indices into 'entities'; got {rel!r}.") from None
        relations.append(
            {"head": [head.start_char, head.end_char], "tail": [tail.start_char, tail.end_char], "label": str(rel["label"]), "score": 1.0}
        )
    doc._.luke_relations = sort_relations(relations)
    return doc


def read_references(nlp: Language, path: Union[str, Path]) -> Iterator[Doc]:
    path = Path(path)
    if path.suffix == ".spacy":
        yield from DocBin().from_disk(path).get_docs(nlp.vocab)
        return
    for line, record in enumerate(srsly.read_jsonl(path), start=1):
        yield _doc_from_record(nlp, record, line, path)


def example_from_reference(nlp: Language, reference: Doc, use_gold_ents: bool) -> Example:
    predicted = nlp.make_doc(reference.text)
    if use_gold_ents:
        predicted.ents = [Span(predicted, e.start, e.end, label=e.label_) for e in reference.ents]
        if ENTITIES_KEY in reference.spans:
            predicted.spans[ENTITIES_KEY] = [Span(predicted, s.start, s.end, label=s.label_) for s in reference.spans[ENTITIES_KEY]]
    return Example(predicted, reference)


@registry.readers("spacy-luke.JsonlCorpus.v1")
def make_jsonl_corpus(path: str, use_gold_ents: bool = True, limit: int = 0) -> Callable[[Language], Iterable[Example]]:
    """Typing / relation examples from a JSONL file (format in spacy_luke/pipeline/corpus.py) or a .spacy DocBin.

    path (str): the .jsonl (or .spacy) file.
    use_gold_ents (bool): put the gold entities into the predicted docs (train/evaluate on gold entities).
    limit (int): read at most this many examples (0: all).
    """
    install_typer_extensions()
    install_relation_extensions()

    def read(nlp: Language) -> Iterator[Example]:
        for i, reference in enumerate(read_references(nlp, path)):
            if limit and i >= limit:
                return
            yield example_from_reference(nlp, reference, use_gold_ents)

    return read

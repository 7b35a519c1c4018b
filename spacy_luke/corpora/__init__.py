"""Readers of training data: corpora in other formats to spaCy Docs (:mod:`.conll`: CoNLL-2003
style NER files to ``.spacy`` DocBins)."""

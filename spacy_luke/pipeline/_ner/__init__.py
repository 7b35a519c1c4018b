"""luke_ner's internals: the span pruner's settings (``spacy-luke.span_pruning.v1``) and its training beside or after the pipe."""

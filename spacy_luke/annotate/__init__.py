"""``annotate``: stream any pipeline over text / JSONL files, locally, on a GPU, or on Ray.

See :func:`spacy_luke.annotate.run.annotate`; the command line is ``python -m spacy_luke annotate``.
"""
from .run import AnnotateSummary, annotate

__all__ = ["AnnotateSummary", "annotate"]

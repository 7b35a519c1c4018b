"""``annotate``: stream any pipeline over text / JSONL / Parquet files, locally, on a GPU, or on Ray.

See :func:`spacy_luke.annotate.run.annotate`; the command line is ``python -m spacy_luke annotate``.
:func:`read_docbin` reads the DocBin shards of ``--format docbin`` back, with the pipes' values.
"""
from .docbin import read_docbin
from .run import AnnotateSummary, annotate

__all__ = ["AnnotateSummary", "annotate", "read_docbin"]

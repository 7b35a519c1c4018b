"""spacy-luke: LUKE and mLUKE inside spaCy pipelines.

Importing this package stays light: torch is imported only where a model is built.
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: ``spacy_luke.get_relations`` without importing spaCy pipes at ``import spacy_luke``.
    if name == "get_relations":
        from .pipeline._relations.records import get_relations

        return get_relations
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

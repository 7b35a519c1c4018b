"""spacy-luke: LUKE and mLUKE inside spaCy pipelines.

Importing this package stays light: torch is imported only where a model is built.
"""
__version__ = "0.1.0"

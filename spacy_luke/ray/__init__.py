"""Ray Data: :class:`LukeAnnotator`, a pipeline as a callable class for ``Dataset.map_batches``
(``pip install 'spacy-luke[ray]'``)."""
from .annotator import LukeAnnotator

__all__ = ["LukeAnnotator"]

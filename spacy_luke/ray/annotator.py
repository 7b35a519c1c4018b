"""``LukeAnnotator``: a saved pipeline as a callable class for Ray Data's ``Dataset.map_batches``.

Ray Data constructs the class once per actor (``concurrency`` actors), so the pipeline loads once
per actor, and calls it with each batch::

    import ray
    from spacy_luke.ray import LukeAnnotator

    ds = ray.data.read_parquet("s3://bucket/corpus/")  # or read_json, read_text ...
    ds = ds.map_batches(
        LukeAnnotator,
        fn_constructor_kwargs={"pipeline": "/models/my_pipeline", "text_column": "body"},
        batch_format="pyarrow", batch_size=32, concurrency=4, num_cpus=2,  # or num_gpus=1 + "gpu_id": 0
    )
    ds.write_parquet("s3://bucket/annotated/")

A batch (a pyarrow Table, a pandas DataFrame or a dict of columns, as ``batch_format`` gives it)
comes back as a pyarrow Table: the batch's columns unchanged, then ``entities``, ``relations``
and ``cats``, the columns of annotate's records in its Parquet schema
(:mod:`spacy_luke.annotate.parquet`). A row whose text is null or not a string is kept, with
null ``entities``, ``relations`` and ``cats``.
"""
from __future__ import annotations

from typing import Any, List, Optional

#: The record columns a batch gets (annotate's, less those of the input: source, line, text).
RECORD_COLUMNS = ("entities", "relations", "cats")


class LukeAnnotator:
    """Annotates batches of a Ray Dataset with a pipeline loaded once (see the module docstring).

    pipeline: a saved spaCy pipeline (folder or package) or a LUKE checkpoint, as ``annotate``
        takes it (a path must exist on every node).
    text_column: the column holding the texts; every other column is carried through.
    gpu_id: run the LUKE pipes on this CUDA device (in a Ray actor with ``num_gpus=1``: 0, its
        GPU); None: the CPU (torch on the CPUs Ray assigned to the actor).
    precision: the precision of every LUKE pipe (a name of the precision registry; None: each
        pipe's own); on a GPU with the same fallbacks as ``annotate --precision``.
    max_batch_cost: padded cost per forward pass of every LUKE pipe (None: the pipes', x8 on a GPU).
    batch_size: texts per ``nlp.pipe`` batch (None: the whole Ray batch).
    lang: a LUKE checkpoint as ``pipeline``: the language of its blank tokenizer.
    """

    def __init__(
        self,
        pipeline: str,
        *,
        text_column: str = "text",
        gpu_id: Optional[int] = None,
        precision: Optional[str] = None,
        max_batch_cost: Optional[int] = None,
        batch_size: Optional[int] = None,
        lang: str = "en",
    ):
        from ..annotate.ray_engine import load_in_actor

        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.text_column = text_column
        self.batch_size = batch_size
        self.nlp, self.settings = load_in_actor(
            str(pipeline), lang=lang, gpu_id=gpu_id, precision=precision, max_batch_cost=max_batch_cost
        )

    def __call__(self, batch: Any):
        """The annotated batch: a pyarrow Table (see the module docstring)."""
        from ..annotate.parquet import record_columns
        from ..annotate.records import entity_records, relation_records

        table = _as_table(batch)
        if self.text_column not in table.column_names:
            raise ValueError(
                f"the batch has no {self.text_column!r} column (columns: {', '.join(table.column_names)}): "
                "give LukeAnnotator text_column= the column holding the texts"
            )
        texts = table.column(self.text_column).to_pylist()
        good = [i for i, text in enumerate(texts) if isinstance(text, str)]
        docs = self.nlp.pipe((texts[i] for i in good), batch_size=self.batch_size or max(1, len(good)))
        records: List[Optional[dict]] = [None] * len(texts)
        for i, doc in zip(good, docs):
            records[i] = {
                "entities": entity_records(doc), "relations": relation_records(doc),
                "cats": {str(label): float(p) for label, p in doc.cats.items()},
            }
        for field, array in record_columns(records, RECORD_COLUMNS):
            if field.name in table.column_names:  # ours win, as in annotate's records
                table = table.drop_columns([field.name])
            table = table.append_column(field, array)
        return table


def _as_table(batch: Any):
    """A pyarrow Table of a Ray batch (pyarrow, pandas or a dict of numpy columns)."""
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return batch
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # a pandas DataFrame
        return pa.Table.from_pandas(batch, preserve_index=False)
    if isinstance(batch, dict):
        return pa.table({name: _column(values) for name, values in batch.items()})
    raise TypeError(f"a batch of type {type(batch).__name__}: give map_batches batch_format='pyarrow', 'pandas' or 'numpy'")


def _column(values: Any):
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):  # e.g. an object array of numpy arrays
        return pa.array([v.tolist() if hasattr(v, "tolist") else v for v in values])

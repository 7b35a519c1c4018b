"""Entity disambiguation with LUKE's pretraining head, scored only where it is needed.

LUKE was pretrained to predict masked Wikipedia entities: the entity prediction head maps an
entity's last hidden state into the entity embedding space (dense, activation, LayerNorm) and
takes its dot product with every row of the entity embedding table, plus a bias per entity
(transformers' ``LukeForMaskedLM(...).entity_logits``). With 500K (LUKE) or 1.2M (mLUKE) rows,
that is most of the work and memory of a forward pass. Here the same logits are computed

- at each mention's candidate rows only (``candidate_ids``): a gather and a dot product, or
- over the whole table in chunks, keeping a running top ``k`` (``top_k``), without ever holding
  all the logits of a batch; only the rows the caller allows are searched (``allowed_entity_ids``
  or ``excluded_entity_ids``: one boolean mask of the table per call, applied chunk by chunk), and
  ``k`` is clamped to the number of those rows.

Both give the numbers ``LukeForMaskedLM`` gives at those rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch.nn import functional as F

from .config import LukeConfig
from .heads import EntityPredictionHead, _TaskModel, _finish, _split_kwargs
from .outputs import _Output

#: Rows of the entity table scored at once by the whole-table search.
TABLE_CHUNK_ROWS = 65536


@dataclass
class LukeEntityDisambiguationOutput(_Output):
    loss: Optional[torch.Tensor] = None
    candidate_logits: Optional[torch.Tensor] = None  # (batch, entities, candidates)
    candidate_ids: Optional[torch.Tensor] = None  # (batch, entities, candidates): entity table rows
    entity_last_hidden_state: Optional[torch.Tensor] = None

    @property
    def candidate_scores(self) -> torch.Tensor:
        """Logits and ids in one float tensor, (batch, entities, candidates, 2): ``[..., 0]`` the
        logits, ``[..., 1]`` the rows (exact in float32 up to 2**24 rows)."""
        return torch.stack((self.candidate_logits.float(), self.candidate_ids.to(torch.float32)), dim=-1)


class LukeForEntityDisambiguation(_TaskModel):
    """LUKE with its masked entity prediction head (``entity_predictions``, as in the pretraining
    checkpoints), scored at candidate entities.

    forward(**encoder inputs, candidate_ids=None, top_k=None, excluded_entity_ids=None,
    allowed_entity_ids=None, labels=None):

    - ``candidate_ids`` (batch, entities, candidates) int: the rows to score per entity input
      (padding rows are scored too; the caller ignores them).
    - or ``top_k`` (int or 0-d tensor): the ``top_k`` best rows of the whole table per entity
      input, only among ``allowed_entity_ids`` (1-d; default: every row) and never among
      ``excluded_entity_ids`` (1-d: e.g. [PAD], [UNK], [MASK], [MASK2]); ``top_k`` is clamped to
      the number of rows searched (0 rows: an empty result).
    - ``labels`` (batch, entities) int: the index of the gold candidate (-100: not counted); the
      loss is the cross entropy over the candidates.
    """

    add_pooling_layer = False

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.entity_predictions = EntityPredictionHead(config)

    def forward(self, candidate_ids=None, top_k=None, excluded_entity_ids=None, labels=None, allowed_entity_ids=None, **kwargs):
        inputs, return_dict = _split_kwargs(kwargs)
        hidden = self.luke(**inputs).entity_last_hidden_state
        projected = self.entity_predictions.transform(hidden)  # (batch, entities, entity_emb_size)
        if candidate_ids is not None:
            logits = self.candidate_logits(projected, candidate_ids)
        elif top_k is not None:
            logits, candidate_ids = self.best_entities(projected, int(top_k), excluded_entity_ids, allowed=allowed_entity_ids)
        else:
            raise ValueError("LukeForEntityDisambiguation needs candidate_ids (rows to score) or top_k (search the table).")
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.to(logits.device).reshape(-1), ignore_index=-100)
        output = LukeEntityDisambiguationOutput(
            loss=loss, candidate_logits=logits, candidate_ids=candidate_ids, entity_last_hidden_state=hidden
        )
        return _finish(output, return_dict)

    @property
    def entity_table(self) -> torch.Tensor:
        return self.luke.entity_embeddings.entity_embeddings.weight

    def candidate_logits(self, projected: torch.Tensor, candidate_ids: torch.Tensor) -> torch.Tensor:
        """The entity logits at ``candidate_ids`` rows: (batch, entities, candidates)."""
        candidate_ids = candidate_ids.to(projected.device).long()
        rows = F.embedding(candidate_ids, self.entity_table)  # (batch, entities, candidates, emb)
        bias = self.entity_predictions.bias[candidate_ids]
        return torch.einsum("bed,becd->bec", projected, rows.to(projected.dtype)) + bias.to(projected.dtype)

    def searchable_rows(self, excluded: Optional[torch.Tensor] = None, allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(rows,) bool: the rows of the entity table the whole-table search may return: those of
        ``allowed`` (every row when None) that are not in ``excluded``; ids outside the table are ignored."""
        table = self.entity_table
        n_rows = table.shape[0]

        def in_table(ids: torch.Tensor) -> torch.Tensor:
            ids = ids.to(table.device).long().reshape(-1)
            return ids[(ids >= 0) & (ids < n_rows)]

        if allowed is None:
            mask = torch.ones(n_rows, dtype=torch.bool, device=table.device)
        else:
            mask = torch.zeros(n_rows, dtype=torch.bool, device=table.device)
            mask[in_table(allowed)] = True
        if excluded is not None:
            mask[in_table(excluded)] = False
        return mask

    def best_entities(
        self,
        projected: torch.Tensor,
        k: int,
        excluded: Optional[torch.Tensor] = None,
        chunk_rows: int = TABLE_CHUNK_ROWS,
        allowed: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best rows per entity input among :meth:`searchable_rows` (``allowed``, less
        ``excluded``), and their logits, computed ``chunk_rows`` rows at a time: (batch, entities,
        k') logits and rows, ``k'`` = min(k, rows searched)."""
        if k < 0:
            raise ValueError(f"top_k={k}: give the number of best entities to keep per entity input (0 or more).")
        table, bias = self.entity_table, self.entity_predictions.bias
        n_rows = table.shape[0]
        searchable = self.searchable_rows(excluded, allowed)
        k = min(k, int(searchable.sum()))
        flat = projected.reshape(-1, projected.shape[-1])
        best_logits = flat.new_full((flat.shape[0], 0), float("-inf"))
        best_ids = torch.zeros((flat.shape[0], 0), dtype=torch.long, device=flat.device)
        for start in range(0, n_rows if k else 0, chunk_rows):
            stop = min(n_rows, start + chunk_rows)
            logits = F.linear(flat, table[start:stop].to(flat.dtype), bias[start:stop].to(flat.dtype))
            logits = logits.masked_fill(~searchable[start:stop].to(flat.device), float("-inf"))
            ids = torch.arange(start, stop, device=flat.device).expand(flat.shape[0], -1)
            merged_logits = torch.cat((best_logits, logits), dim=1)
            merged_ids = torch.cat((best_ids, ids), dim=1)
            keep = min(k, merged_logits.shape[1])
            best_logits, order = merged_logits.topk(keep, dim=1)
            best_ids = merged_ids.gather(1, order)
        shape = projected.shape[:-1] + (k,)
        return best_logits.reshape(shape), best_ids.reshape(shape)

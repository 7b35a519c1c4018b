"""An entity table started from the entities' titles: what ``convert-encoder --entities FILE`` adds.

A converted encoder has no entities of its own (only ``[PAD]``, ``[UNK]``, ``[MASK]``,
``[MASK2]``), so the entity linker and ``build-kb`` have nothing to link to. Given a list of
titles, the conversion also writes:

- the titles as the entity vocabulary (after the four special entities, in file order);
- each title's entity embedding started from the title itself: its word pieces go through the
  converted encoder (``[CLS] pieces [SEP]``, words only), the last hidden states of the pieces
  are averaged, passed through the entity prediction transform (below) and scaled to the mean
  norm of the word embeddings, so the entity rows sit on the same scale as the words they replace
  in the input;
- the pretraining head ``entity_predictions`` that the linker scores with: its transform starts as
  the identity (then the encoder's activation and a LayerNorm), its bias at zero. Before any
  training a mention's [MASK] state is scored by its similarity to each candidate title's
  encoding; training the linker on linked text (``spacy train``) then tunes all of it.

The title file is UTF-8, one title per line, or an alias file (``alias<TAB>title<TAB>count``
lines, the linker's and ``build-kb``'s format), whose titles are taken in order of first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Union

import torch

from ..model.config import LukeConfig
from ..tokenization.subwords.word_pieces import WordPieceModel

#: Titles encoded at once.
TITLE_BATCH = 64
#: Word pieces of a title kept (the rest is dropped; titles are short).
MAX_TITLE_PIECES = 32


def read_entity_titles(path: Union[str, Path]) -> List[str]:
    """The titles of a title file (one per line) or an alias file (``alias<TAB>title<TAB>count``),
    each once, in order of first appearance; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give a UTF-8 file of entity titles, one per line, or an alias file.")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); save the title list as UTF-8.") from None
    titles: Dict[str, None] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) not in (1, 3):
            raise ValueError(
                f"{path}:{number}: expected a title, or alias<TAB>title<TAB>count; got {len(fields)} tab-separated fields."
            )
        title = (fields[0] if len(fields) == 1 else fields[1]).strip()
        if not title:
            raise ValueError(f"{path}:{number}: the title is empty.")
        titles[title] = None
    if not titles:
        raise ValueError(f"{path} holds no title: give one entity title per line (or alias<TAB>title<TAB>count lines).")
    return list(titles)


def title_pieces(word_pieces: WordPieceModel, titles: Sequence[str]) -> List[List[int]]:
    """The word pieces of each title (at most MAX_TITLE_PIECES; an unencodable title is an error)."""
    pieces = word_pieces.encode_batch(list(titles))
    for title, ids in zip(titles, pieces):
        if not ids:
            raise ValueError(f"The entity title {title!r} has no word pieces in this encoder's vocabulary; remove it or fix it.")
    return [ids[:MAX_TITLE_PIECES] for ids in pieces]


def add_title_entities(
    config: LukeConfig,
    state: Dict[str, torch.Tensor],
    entity_vocab: Dict[str, int],
    word_pieces: WordPieceModel,
    titles: Sequence[str],
) -> None:
    """Start the rows of ``titles`` in ``state``'s entity table from the titles' encodings and add
    the ``entity_predictions`` head (see the module docstring). ``state`` is changed in place."""
    from ..model.heads import EntityPredictionHeadTransform
    from ..model.luke import LukeModel

    if config.entity_emb_size != config.hidden_size:
        raise ValueError(
            f"entity_emb_size={config.entity_emb_size} differs from hidden_size={config.hidden_size}: entities start "
            "from their titles only without a projection; leave entity_emb_size unset."
        )
    hidden = config.hidden_size
    transform = EntityPredictionHeadTransform(config)
    with torch.no_grad():
        transform.dense.weight.copy_(torch.eye(hidden))
        transform.dense.bias.zero_()
    encoder = LukeModel(config, add_pooling_layer=False)
    encoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    encoder.eval()
    word = state["embeddings.word_embeddings.weight"].float()
    scale = float(word.norm(dim=-1).mean())
    rows = torch.tensor([entity_vocab[title] for title in titles], dtype=torch.long)
    pieces = title_pieces(word_pieces, titles)
    table = state["entity_embeddings.entity_embeddings.weight"]
    encoded: List[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(pieces), TITLE_BATCH):
            encoded.append(transform(_mean_title_states(encoder, config, pieces[start : start + TITLE_BATCH])))
    vectors = torch.cat(encoded)
    vectors = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-6) * scale
    table = table.clone()
    table[rows] = vectors.to(table.dtype)
    state["entity_embeddings.entity_embeddings.weight"] = table
    dtype = table.dtype
    for name, tensor in transform.state_dict().items():
        state[f"entity_predictions.transform.{name}"] = tensor.to(dtype).contiguous()
    state["entity_predictions.bias"] = torch.zeros(table.shape[0], dtype=dtype)


def _mean_title_states(encoder, config: LukeConfig, batch: List[List[int]]) -> torch.Tensor:
    """(len(batch), hidden): the mean last hidden state of each title's pieces in ``[CLS] pieces [SEP]``."""
    length = max(len(ids) for ids in batch) + 2
    input_ids = torch.full((len(batch), length), int(config.pad_token_id), dtype=torch.long)
    mask = torch.zeros(len(batch), length, dtype=torch.long)
    pieces = torch.zeros(len(batch), length)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids) + 2] = torch.tensor([config.bos_token_id, *ids, config.eos_token_id])
        mask[i, : len(ids) + 2] = 1
        pieces[i, 1 : len(ids) + 1] = 1.0
    states = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
    return (states * pieces.unsqueeze(-1)).sum(1) / pieces.sum(1, keepdim=True)


"""Writing a LUKE checkpoint folder started from an encoder: :func:`convert_encoder_to_luke`."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

from ..model.checkpoint import WEIGHT_FILES
from .entity_titles import add_title_entities
from .tokenizer_files import COPIED_TOKENIZER_FILES, write_json, write_tokenizer_files
from .weights import convert_encoder

logger = logging.getLogger("spacy_luke")

# Files a conversion writes (removed first with overwrite=True).
WRITTEN_FILES = (
    "config.json",
    "model.safetensors",
    "entity_vocab.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
) + COPIED_TOKENIZER_FILES + WEIGHT_FILES


def convert_encoder_to_luke(
    src_folder: Union[str, Path],
    dest_folder: Union[str, Path],
    *,
    entity_emb_size: Optional[int] = None,
    extra_entities: Sequence[str] = (),
    entity_titles: Sequence[str] = (),
    add_entity_markers: bool = True,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a LUKE checkpoint folder started from a BERT / RoBERTa / XLM-R / DistilBERT encoder.

    Args:
        src_folder: the encoder's local checkpoint folder (config.json with ``model_type``,
            safetensors or .bin weights, tokenizer files).
        dest_folder: where to write the LUKE folder (config.json, model.safetensors,
            entity_vocab.json, the word tokenizer files, tokenizer_config.json,
            special_tokens_map.json, added_tokens.json).
        entity_emb_size: size of the entity embeddings; default ``hidden_size`` (no projection).
        extra_entities: entity titles after the four special entities (randomly initialized).
        entity_titles: entity titles after those, each started from its title's encoding, with the
            pretraining head the entity linker scores with (see :mod:`.entity_titles`;
            :func:`.entity_titles.read_entity_titles` reads a title or alias file).
        add_entity_markers: add ``<ent>`` / ``<ent2>`` word tokens (for entity / relation
            classification with markers).
        seed: seed of the random initializations (extra entities, projection).
        overwrite: allow a non-empty ``dest_folder`` (the files a conversion writes are replaced).

    Returns the destination folder: ``LukeForEntitySpanClassification.from_pretrained(dest)``
    and ``spacy_luke.tokenization.load_tokenizer(dest)`` load it.
    """
    src = Path(src_folder)
    dest = Path(dest_folder)
    if dest.exists() and src.exists() and dest.resolve() == src.resolve():
        raise ValueError("dest_folder is the source folder; write the LUKE checkpoint to a new folder.")
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{dest} is not empty; pass overwrite=True to replace a previous conversion.")
        for name in WRITTEN_FILES:
            if (dest / name).is_file():
                (dest / name).unlink()
    titles = list(entity_titles)
    conversion = convert_encoder(
        src, entity_emb_size=entity_emb_size, extra_entities=list(extra_entities) + titles,
        add_entity_markers=add_entity_markers, seed=seed,
    )
    if titles:
        add_title_entities(conversion.config, conversion.state, conversion.entity_vocab, conversion.source.word_pieces, titles)
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    conversion.config.to_json_file(dest / "config.json")
    save_file(conversion.state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    write_json(dest / "entity_vocab.json", conversion.entity_vocab)
    write_tokenizer_files(conversion, dest)
    logger.info("Wrote a LUKE checkpoint started from %s (%s) to %s.", src, conversion.source.model_type, dest)
    return dest

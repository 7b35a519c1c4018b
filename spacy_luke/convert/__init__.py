"""A LUKE model that starts from a non-LUKE encoder: BERT, RoBERTa, XLM-R or DistilBERT.

This is how LUKE itself was built (from RoBERTa) and mLUKE (from XLM-R): the word encoder is
copied, and the entity side is initialized from it the way LUKE's pretraining did:

- entity-aware queries ``w2e_query`` / ``e2w_query`` / ``e2e_query`` = copies of ``query``
  (so before any training the model attends exactly like the encoder);
- the entity table's position embeddings, indexed by raw piece index ``i``, = the word
  position embedding the encoder gives piece ``i``; entity token types and LayerNorm = the
  word ones;
- the entity vocabulary holds the special entities ``[PAD]``, ``[UNK]``, ``[MASK]``,
  ``[MASK2]`` (then ``extra_entities``). With ``entity_emb_size == hidden_size`` (the default,
  no projection) ``[MASK]`` and ``[MASK2]`` start as the word embedding of the mask token
  (``[MASK]`` / ``<mask>``), as LUKE's fine-tuning code started ``[MASK2]`` as a copy of
  ``[MASK]``; ``[UNK]`` as the word embedding of the unknown token; ``[PAD]`` as zeros; extra
  entities (and everything, when a projection is needed) as N(0, initializer_range) with a
  fixed seed, so a conversion is reproducible; ``entity_titles`` start from their titles instead
  (:mod:`.entity_titles`);
- the entity markers ``<ent>`` / ``<ent2>`` (``add_entity_markers``) get two new word
  embedding rows, started as the embeddings of ``"@"`` and ``"#"`` as the LUKE paper did
  (the mean word embedding where the vocabulary lacks them), and are recorded in
  ``added_tokens.json`` (and in ``tokenizer.json`` when the ids line up) so the tokenizer
  finds them by string.

BERT numbers positions from 0, our word embeddings from ``padding_idx + 1`` (RoBERTa's
layout). The model code stays the same: for BERT and DistilBERT the position table is written
shifted, LUKE row ``pad + 1 + i`` = BERT row ``i`` (``max_position_embeddings`` grows by
``pad + 1``). RoBERTa and XLM-R already use our layout.

Checkpoint names are mapped with key-rule lists (``encoder_families.BERT_KEY_RULES``,
``encoder_families.DISTILBERT_KEY_RULES``); a family is data (:data:`ENCODER_FAMILIES`).

This package sits above ``model/`` and ``tokenization/`` (it reads the encoder's word tokenizer
and builds LUKE weights); neither of them imports it. Modules:

- :mod:`.encoder_families`: each family's key rules, config keys, defaults and special tokens;
- :mod:`.source`: reading the encoder's folder (config, word tokenizer, special tokens);
- :mod:`.weights`: the LUKE config and state dict (:func:`encoder_to_luke`);
- :mod:`.tokenizer_files`: the tokenizer files of the written folder;
- :mod:`.entity_titles`: an entity table started from a list of titles and the pretraining head
  the entity linker scores with (``entity_titles=``, ``convert-encoder --entities FILE``);
- :mod:`.luke_folder`: writing the whole LUKE folder (:func:`convert_encoder_to_luke`).
"""
from .encoder_families import ENCODER_FAMILIES, EncoderFamily
from .luke_folder import WRITTEN_FILES, convert_encoder_to_luke
from .weights import ENTITY_MARKERS, encoder_to_luke, special_entity_vocab

__all__ = [
    "ENCODER_FAMILIES",
    "ENTITY_MARKERS",
    "EncoderFamily",
    "WRITTEN_FILES",
    "convert_encoder_to_luke",
    "encoder_to_luke",
    "special_entity_vocab",
]

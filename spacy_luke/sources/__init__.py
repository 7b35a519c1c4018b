"""Where checkpoints and pipelines come from: the bottom layer, below ``model/`` and ``tokenization/``.

- :mod:`.names`: what a name refers to (``what_is(name) -> Source``: a saved pipeline, an
  installed package, a LUKE checkpoint, an encoder to convert, a saved LUKE pipe's folder, a
  hub repo id, ...), the one rule every command and loader uses;
- :mod:`.hub`: a name to a local folder (the folder itself, or a hub download);
- :mod:`.files`: the file names of checkpoints and saved pipelines;
- :mod:`.entity_vocab`: the entity vocabulary reader (checkpoint data both the model and the
  tokenizers read).

Imports nothing of ours outside this package.
"""

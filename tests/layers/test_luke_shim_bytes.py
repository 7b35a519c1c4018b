"""Serialized LUKE layers are read as what ``LukeShim.to_bytes`` writes, nothing else: a file name in
the bytes never writes outside the layer's temporary folder (``nlp.from_bytes`` of crafted bytes)."""
from __future__ import annotations

import tempfile

import pytest
import spacy
import srsly

from support.ner import MAX_LEN, make_nlp


def with_layer_files(nlp_bytes: bytes, change) -> bytes:
    """``nlp_bytes`` with the luke_ner layer's ``{file name: bytes}`` replaced by ``change(files)``."""
    msg = srsly.msgpack_loads(nlp_bytes)
    pipe = srsly.msgpack_loads(msg["luke_ner"])
    model = srsly.msgpack_loads(pipe["model"])
    (node,) = [i for i, shims in enumerate(model["shims"]) if shims]
    model["shims"][node] = [srsly.msgpack_dumps(change(srsly.msgpack_loads(model["shims"][node][0])))]
    pipe["model"] = srsly.msgpack_dumps(model)
    msg["luke_ner"] = srsly.msgpack_dumps(pipe)
    return srsly.msgpack_dumps(msg)


def fresh_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"max_mention_length": MAX_LEN})
    return nlp


def test_file_names_outside_the_folder_are_refused(ner_checkpoint, tmp_path, monkeypatch):
    data = make_nlp(ner_checkpoint).to_bytes()
    assert fresh_nlp().from_bytes(data).get_pipe("luke_ner").is_loaded  # the untouched bytes load
    temp = tmp_path / "temp"  # where the layer's temporary folder is made: temp/tmpXXXX/
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    outside = tmp_path / "absolute-evil"
    bad_names = ["../evil", str(outside), "sub/config.json", "..", ""]
    for bad in bad_names:
        crafted = with_layer_files(data, lambda files: {bad: b"pwned", **files})  # the bad name first
        with pytest.raises(ValueError) as err:
            fresh_nlp().from_bytes(crafted)
        message = str(err.value)
        assert repr(bad) in message and "not a plain file name" in message and "not from LukeShim.to_bytes" in message
        assert "\n" not in message
        assert not (temp / "evil").exists() and not outside.exists()
        assert list(temp.iterdir()) == []  # nothing left behind, nothing written beside the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temp"]


def test_file_contents_must_be_bytes(ner_checkpoint):
    data = make_nlp(ner_checkpoint).to_bytes()
    crafted = with_layer_files(data, lambda files: {**files, "config.json": files["config.json"].decode("utf8")})
    with pytest.raises(ValueError, match=r"hold a str for the file 'config.json', not bytes: .*not from LukeShim.to_bytes"):
        fresh_nlp().from_bytes(crafted)
    with pytest.raises(ValueError, match=r"hold a list, not a dict of file names to bytes"):
        fresh_nlp().from_bytes(with_layer_files(data, lambda files: list(files)))

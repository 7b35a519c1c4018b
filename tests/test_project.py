"""The spaCy project: its commands are well-formed and declare their inputs and outputs."""
from pathlib import Path

import srsly

PROJECT = Path(__file__).resolve().parents[1] / "project"


def test_project_commands_declare_deps_and_outputs():
    from weasel.util import load_project_config

    config = load_project_config(PROJECT)
    commands = {c["name"]: c for c in config["commands"]}
    assert set(config["workflows"]["all"]) == {"encoder", "convert", "train", "evaluate", "package"}
    assert config["workflows"]["pruned"] == ["pruner", "evaluate-pruned"]
    assert set(commands) == set(config["workflows"]["all"]) | set(config["workflows"]["pruned"])
    for name, command in commands.items():
        assert command.get("outputs"), f"{name} declares no outputs"
        if name != "encoder":  # the encoder comes from an installed package, not a file
            assert command.get("deps"), f"{name} declares no deps"
    assert (PROJECT / "configs" / "luke_ner.cfg").is_file()


def test_project_training_config_resolves():
    import spacy
    from spacy.util import load_config

    config = load_config(PROJECT / "configs" / "luke_ner.cfg", overrides={"paths.encoder": "assets/luke-minilm"})
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["luke_ner"]
    assert config["initialize"]["components"]["luke_ner"]["loader"]["@misc"] == "spacy-luke.HFLukeLoader.v1"

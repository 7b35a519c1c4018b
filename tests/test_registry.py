"""Every name the package registers (setup.cfg entry points) resolves, and follows our naming."""
import configparser
from pathlib import Path

import pytest
from spacy.language import Language
from spacy.util import registry

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
REGISTRIES = {
    "spacy_architectures": registry.architectures,
    "spacy_misc": registry.misc,
    "spacy_scorers": registry.scorers,
    "spacy_readers": registry.readers,
}


def entry_points():
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    out = []
    for group, lines in parser["options.entry_points"].items():
        for line in lines.strip().splitlines():
            name, _, target = (part.strip() for part in line.partition("="))
            out.append((group, name, target))
    return out


ENTRY_POINTS = entry_points()


def test_there_are_entry_points():
    groups = {group for group, _, _ in ENTRY_POINTS}
    assert {"spacy_factories", "spacy_architectures", "spacy_misc", "spacy_scorers"} <= groups


@pytest.mark.parametrize("group,name,target", [e for e in ENTRY_POINTS if e[0] != "console_scripts"])
def test_registered_name_resolves(group, name, target):
    import importlib

    module_name, _, attr = target.partition(":")
    function = getattr(importlib.import_module(module_name), attr)
    if group == "spacy_factories":
        assert Language.has_factory(name)
        assert name.startswith("luke_")
        return
    assert name.startswith("spacy-luke.") and name.rsplit(".", 1)[-1].startswith("v")
    assert registry.has(group.replace("spacy_", ""), name) or REGISTRIES[group].get(name)
    assert REGISTRIES[group].get(name) is function
    assert function.__doc__, f"{name} needs a docstring (spacy init fill-config users read it)"

"""The LUKE factories: each setting reaches its pipe (passed explicitly), each argument is
documented once in the factory's docstring, and the shared settings' lines come from one place."""
from __future__ import annotations

import inspect
import re

import pytest
import spacy
from spacy.language import Language
from spacy.util import registry

import spacy_luke.pipeline  # noqa: F401  (registers the factories)
from spacy_luke.pipeline._shared.settings import NOT_SETTINGS, SETTING_LINES, document_settings

FACTORIES = ("luke_ner", "luke_entity_typer", "luke_relation_extractor", "luke_entity_vectors", "luke_entity_linker", "luke_textcat")
# Settings a pipe keeps as attributes (objects built from the config), not in its cfg.
OBJECTS = ("model", "scorer", "candidates", "entity_candidates", "pruning", "training_candidates")
ARGUMENT = re.compile(r"^(\w+) \((.+?)\): \S")


def factory_of(name: str):
    return registry.factories.get(Language.get_factory_name(name))


def arguments(factory):
    return [name for name in inspect.signature(factory).parameters if name not in NOT_SETTINGS]


def documented(factory):
    return [found.group(1) for line in inspect.getdoc(factory).splitlines() if (found := ARGUMENT.match(line))]


@pytest.mark.parametrize("name", FACTORIES)
def test_every_argument_is_documented_once_in_signature_order(name):
    factory = factory_of(name)
    assert documented(factory) == arguments(factory)
    assert set(Language.get_factory_meta(name).default_config) == set(arguments(factory))  # every argument has its default in the config


@pytest.mark.parametrize("name", FACTORIES)
def test_shared_settings_take_their_one_line(name):
    factory = factory_of(name)
    lines = {found.group(1): line for line in inspect.getdoc(factory).splitlines() if (found := ARGUMENT.match(line))}
    for setting in ("max_batch_cost", "precision", "engine"):
        assert lines[setting] == f"{setting} {SETTING_LINES[setting]}"
    architecture = Language.get_factory_meta(name).default_config["model"]["@architectures"]
    assert lines["model"] == f"model {SETTING_LINES['model'].format(architecture=architecture)}"


@pytest.mark.parametrize("name", FACTORIES)
def test_every_setting_reaches_the_pipe(name):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(name, config={"pretrained": None})  # nothing loads at construction
    given = {**Language.get_factory_meta(name).default_config, "pretrained": None}
    for setting in arguments(factory_of(name)):
        if setting in OBJECTS:
            continue
        assert setting in pipe.cfg, setting
        if setting != "lite":  # null lite is decided from use_kb_ids
            assert pipe.cfg[setting] == given[setting], setting
    assert (pipe.scorer is not None) == ("scorer" in given)


def test_a_factory_docstring_must_cover_its_arguments():
    defaults = {"model": {"@architectures": "x.v1"}}

    def make(nlp, name, model, threshold):
        """Summary.

        threshold (float): the threshold.
        """

    doc = inspect.getdoc(document_settings(defaults)(make))
    assert doc.splitlines()[2:] == ["model (Model): the thinc model (x.v1 by default).", "threshold (float): the threshold."]

    def missing(nlp, name, model, unknown_setting):
        """Summary."""

    with pytest.raises(TypeError, match="no line for the argument 'unknown_setting'"):
        document_settings(defaults)(missing)

    def extra(nlp, name, model):
        """Summary.

        threshold (float): documented, not taken.
        """

    with pytest.raises(TypeError, match=r"documents \['threshold'\], which it does not take"):
        document_settings(defaults)(extra)

    def twice(nlp, name, threshold):
        """Summary.

        threshold (float): once.
        threshold (float): twice.
        """

    with pytest.raises(TypeError, match="'threshold' twice"):
        document_settings(defaults)(twice)

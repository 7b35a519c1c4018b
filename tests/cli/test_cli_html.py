"""`ner --format html`: every value displaCy embeds is escaped, and a linked entity's kb_id is one
URL-encoded path segment of its link (in-process `cli.main`, a saved pipeline whose last pipe links)."""
from __future__ import annotations

import warnings
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest
from spacy.language import Language
from spacy.tokens import Span

from spacy_luke import cli
from support.cli import fails
from support.ner import make_nlp

# text of a one-line doc -> (label, kb_id) of the one entity covering it; the kb_id is the text
LINKED = {
    'Foo" onmouseover="alert(1)': "ORG",
    "AT&T <b>x</b>": "ORG",
    "C# (programming language)": 'X&Y<z> "q"',
    "100% ?x": "LOC",
    "Beyoncé / Knowles": "PER",
}
UNLINKED = "Nothing to see here"


@Language.component("test_cli_html_links")
def link_whole_lines(doc):
    """Replace the entities by one covering the doc, linked to the doc's text (LINKED docs only)."""
    label = LINKED.get(doc.text)
    doc.ents = [Span(doc, 0, len(doc), label=label, kb_id=doc.text)] if label else []
    return doc


class Page(HTMLParser):
    """Every tag's attributes, and per <mark>: its own text, its label and its <a> (href, text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.attrs, self.marks, self.path, self.text = [], [], [], ""

    def handle_starttag(self, tag, attrs):
        self.attrs.append((tag, dict(attrs)))
        self.path.append(tag)
        if tag == "mark":
            self.marks.append({"text": "", "label": "", "href": None, "link": ""})
        elif tag == "a" and "mark" in self.path:
            self.marks[-1]["href"] = dict(attrs)["href"]

    def handle_endtag(self, tag):
        assert self.path and self.path[-1] == tag, (tag, self.path)  # well-formed: nothing injected
        self.path.pop()

    def handle_data(self, data):
        self.text += data
        if "mark" in self.path:
            fields = {"mark": "text", "span": "label", "a": "link"}
            field = next(fields[tag] for tag in reversed(self.path) if tag in fields)
            self.marks[-1][field] += data


def render(checkpoint, tmp_path, capsys, *options) -> Page:
    """The parsed page `ner --format html` writes for LINKED and UNLINKED, one doc per line."""
    nlp = make_nlp(checkpoint)
    nlp.add_pipe("test_cli_html_links")
    nlp.to_disk(tmp_path / "pipeline")
    (tmp_path / "in.txt").write_text("\n".join([*LINKED, UNLINKED]) + "\n", encoding="utf8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main(["ner", "--pretrained", str(tmp_path / "pipeline"), "--format", "html", "-o", str(tmp_path / "out.html"), *options, str(tmp_path / "in.txt")])
    assert code == 0, capsys.readouterr().err
    assert not [w for w in caught if "W006" in str(w.message)]  # the doc without entities: no displaCy warning
    page = Page()
    page.feed((tmp_path / "out.html").read_text(encoding="utf8"))
    page.close()
    return page


def test_linked_titles_are_escaped_and_url_encoded(ner_checkpoint, tmp_path, capsys):
    page = render(ner_checkpoint, tmp_path, capsys)
    assert not [(tag, name) for tag, attrs in page.attrs for name in attrs if name.startswith("on")]
    assert "b" not in [tag for tag, _ in page.attrs] and "z" not in [tag for tag, _ in page.attrs]
    assert [m["text"].strip() for m in page.marks] == list(LINKED)  # the literal text, one mark per entity
    prefix = "https://en.wikipedia.org/wiki/"
    for mark, (title, label) in zip(page.marks, LINKED.items()):
        assert mark["label"].strip() == label and mark["link"].strip() == title
        href = mark["href"]
        assert href.startswith(prefix) and unquote(href[len(prefix):]) == title.replace(" ", "_")
        parts = urlsplit(href)
        assert parts.query == "" and parts.fragment == "" and parts.path.count("/") == 2  # one path segment
    assert UNLINKED in page.text


def test_a_link_template_with_a_query(ner_checkpoint, tmp_path, capsys):
    template = "https://example.org/entity?lang=en&title={}"  # its & is escaped in the attribute
    page = render(ner_checkpoint, tmp_path, capsys, "--kb-url-template", template)
    prefix = template.format("")
    assert len(page.marks) == len(LINKED)
    for mark, title in zip(page.marks, LINKED):
        assert mark["href"].startswith(prefix) and unquote(mark["href"][len(prefix):]) == title.replace(" ", "_")
        assert urlsplit(mark["href"]).query.split("&")[:1] == ["lang=en"] and mark["href"].count("&") == 1


@pytest.mark.parametrize("template", ["https://example.org/{title}", "https://example.org/wiki", "https://example.org/{"])
def test_a_bad_link_template_is_one_line(ner_checkpoint, tmp_path, capsys, template):
    (tmp_path / "in.txt").write_text("Tokyo\n", encoding="utf8")
    line = fails(capsys, "ner", "--pretrained", ner_checkpoint, "--format", "html", "--kb-url-template", template, tmp_path / "in.txt")
    assert repr(template) in line and "one {} where the kb_id goes" in line

"""The answer as the page at ``/`` shows it: displaCy's entity markup of each record, linked
entities linked to the knowledge base, and the relations as a list.

displaCy escapes the text but puts labels, kb_ids and links into its markup as they are (a title
from an alias file or a KB could add attributes or markup), so every value embedded here is
escaped first, the label through the entity's template parameters (its colour stays the
label's own), as ``python -m spacy_luke ner --format html`` does.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence
from urllib.parse import quote


def kb_url(template: str, kb_id: str) -> str:
    """The link of ``kb_id``: ``template`` with the kb_id as one URL path segment in its ``{}``,
    Wikipedia style (spaces as ``_``, then every character but letters, digits and ``_.-~``
    percent-encoded: ``/``, ``?``, ``#``, ``%``, ``"``, ``&`` ...)."""
    return template.format(quote(kb_id.replace(" ", "_"), safe=""))


def render_records(records: Sequence[Dict[str, Any]], kb_url_template: str, *, lang: str = "en", direction: str = "ltr") -> str:
    """One HTML fragment: per record, its entities (displaCy) and its relations (a list)."""
    from spacy import displacy
    from spacy.util import escape_html

    parts: List[str] = []
    for record in records:
        ents = []
        for ent in record["entities"]:
            item = {"start": ent["start"], "end": ent["end"], "label": ent["label"], "params": {"label": escape_html(ent["label"])}}
            if ent.get("kb_id"):
                item.update(kb_id=escape_html(ent["kb_id"]), kb_url=escape_html(kb_url(kb_url_template, ent["kb_id"])))
            ents.append(item)
        parsed = {"text": record["text"], "ents": ents, "title": None, "settings": {"lang": lang, "direction": direction}}
        parts.append('<section class="luke-record">')
        # manual=True: the entities above, and no displaCy warning (W006) for a text without entities.
        parts.append(displacy.render(parsed, style="ent", page=False, jupyter=False, manual=True))
        if record["relations"]:
            parts.append('<ol class="luke-relations">')
            for rel in record["relations"]:
                head, tail = (escape_html(record["text"][slice(*rel[key])]) for key in ("head", "tail"))
                parts.append(
                    f'<li><q class="luke-head">{head}</q> <b class="luke-relation">{escape_html(rel["label"])}</b> '
                    f'<q class="luke-tail">{tail}</q> <span class="luke-score">{rel["score"]:.2f}</span></li>'
                )
            parts.append("</ol>")
        parts.append("</section>")
    return "".join(parts)

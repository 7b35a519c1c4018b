"""The page at ``/`` in a real browser (headless Chromium from the Debian packages, driven by
Selenium): after a click the entities appear as displaCy renders them, linked entities link to
the knowledge base (URL-encoded), relations are listed, and nothing the pipeline writes can add
markup. Skipped, saying why, where no browser is installed (``.ci/run`` installs one)."""
from __future__ import annotations

import os
import re
import shutil

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from spacy_luke.serve import create_app  # noqa: E402
from spacy_luke.serve.page import PAGE  # noqa: E402
from support.serve import ready_client, serving  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
NASTY_LABEL = '<img src=x onerror="window.pwned=1">'
KB_ID = 'Acme "Corp" & Co/2'
if not Doc.has_extension("luke_relations"):  # as luke_relation_extractor installs it
    Doc.set_extension("luke_relations", default=None)


@Language.component("serve_test_links")
def serve_test_links(doc):
    """Links every ORG to KB_ID and relates the first two entities (what a linker and a relation
    extractor would write)."""
    doc.ents = [Span(doc, e.start, e.end, label=e.label_, kb_id=KB_ID if e.label_ == "ORG" else "") for e in doc.ents]
    if len(doc.ents) >= 2:
        head, tail = doc.ents[:2]
        doc._.luke_relations = [{"head": [head.start_char, head.end_char], "tail": [tail.start_char, tail.end_char],
                                 "label": "org:based_in<b>", "score": 0.875}]
    return doc


def linked_pipeline():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "ORG", "pattern": "Acme Corp"}, {"label": "GPE", "pattern": "Paris"},
                        {"label": NASTY_LABEL, "pattern": "Zork"}])
    nlp.add_pipe("serve_test_links")
    return nlp


def test_the_page_is_self_contained():
    assert not re.search(r"""<link|<script\s+src|\ssrc=|@import|url\(|https?://""", PAGE), "the page loads something from elsewhere"


def test_render_escapes_and_links():
    with ready_client(create_app(linked_pipeline())) as client:
        answer = client.post("/v1/render", json={"texts": ["Acme Corp opened in Paris near Zork."]}).json()
        page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = answer["html"]
    assert 'href="https://en.wikipedia.org/wiki/Acme_%22Corp%22_%26_Co%2F2"' in html
    assert "&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;" in html and "<img" not in html
    assert "org:based_in&lt;b&gt;" in html and "<b>" not in html.replace('<b class="luke-relation">', "")
    assert [e["kb_id"] for e in answer["records"][0]["entities"]] == [KB_ID, "", ""]


def _browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        pytest.skip(f"no browser to test the page in: {', '.join(missing)} missing (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    return webdriver, Service


@pytest.mark.heavy  # uvicorn on a socket and a headless Chromium
def test_the_page_shows_entities_links_and_relations_after_a_click(tmp_path):
    webdriver, Service = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    with serving(create_app(linked_pipeline())) as base:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(30)
            driver.get(base + "/")
            box = driver.find_element(By.ID, "text")
            box.clear()
            box.send_keys("Acme Corp opened in Paris near Zork.")
            driver.find_element(By.ID, "annotate").click()
            WebDriverWait(driver, 30).until(lambda d: "entities" in d.find_element(By.ID, "status").text)
            marks = driver.find_elements(By.CSS_SELECTOR, "#result mark.entity")
            texts = [mark.text for mark in marks]
            links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#result mark.entity a")]
            relations = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#result .luke-relations li")]
            status = driver.find_element(By.ID, "status").text
            pwned = driver.execute_script("return window.pwned === undefined && document.querySelectorAll('#result img').length")
            resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        finally:
            driver.quit()
            shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert status == "3 entities, 1 relations"
    assert [t.split()[:2] for t in texts[:2]] == [["Acme", "Corp"], ["Paris", "GPE"]] and "ORG" in texts[0]
    assert NASTY_LABEL in texts[2] and pwned == 0  # the label is text, not an element
    assert links == ["https://en.wikipedia.org/wiki/Acme_%22Corp%22_%26_Co%2F2"]
    assert relations == ["Acme Corp org:based_in<b> Paris 0.88"]
    assert all(url.startswith(base) for url in resources), resources

"""The page at ``/``: a text box and a button; the answer is shown as displaCy renders it
(``POST v1/render``). Everything is in this one page: no external script, style sheet or font."""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spacy-luke</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; }
button { font: inherit; margin: .5rem 0; padding: .4rem 1.2rem; }
#status { color: #555; min-height: 1.5em; }
#status.error { color: #b00020; }
.luke-record { border-top: 1px solid #ddd; padding: .5rem 0; }
.luke-relations { line-height: 1.8; }
.luke-score, #pipes { color: #777; }
</style>
</head>
<body>
<h1>spacy-luke</h1>
<p id="pipes"></p>
<label for="text">Text</label>
<textarea id="text" rows="6">Barack Obama was born in Hawaii. He was the president of the United States.</textarea>
<br><button id="annotate" type="button">Annotate</button>
<p id="status" role="status"></p>
<div id="result"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
fetch("v1/pipeline").then((r) => r.ok ? r.json() : null).then((info) => {
  if (info) $("pipes").textContent = "Pipes: " + info.pipes.map((p) => p.name).join(", ") + " (" + info.device + ")";
}).catch(() => {});
$("annotate").addEventListener("click", async () => {
  const status = $("status");
  status.className = "";
  status.textContent = "Annotating\\u2026";
  try {
    const response = await fetch("v1/render", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({texts: [$("text").value]}),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? answer.error.message : response.statusText);
    $("result").innerHTML = answer.html;  // rendered and escaped by the server
    const record = answer.records[0];
    status.textContent = record.entities.length + " entities, " + record.relations.length + " relations";
  } catch (err) {
    $("result").textContent = "";
    status.className = "error";
    status.textContent = String(err.message || err);
  }
});
</script>
</body>
</html>
"""

"""ONNX export (spacy_luke.export): ONNX Runtime equals our float32 torch model to 1e-4 on the pipes'
own padded batches, whose batch / word / entity / mention lengths differ from the export sample;
the folder is self-contained; the command line writes it and fails in one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import spacy
import torch

pytest.importorskip("onnxruntime")

from support.cli import fails  # noqa: E402
from support.entity_docs import TEXTS, make_docs  # noqa: E402
from support.checkpoints import share_queries  # noqa: E402

from spacy_luke import cli  # noqa: E402
from spacy_luke.export import HEAD_ALIASES, export_onnx  # noqa: E402
from spacy_luke.layers import head_layer, padded_batches  # noqa: E402
from spacy_luke.export.onnx import HEADS, OnnxExportError, sample_inputs  # noqa: E402
from spacy_luke.export.ort_runner import OnnxRunner  # noqa: E402
from support.onnx_pipes import ATOL, PIPES


def ner_sample(folder):
    """The sample the export traces the NER head on (batch 2, 16 words, 3 entities, mentions of 4)."""
    from spacy_luke.model import LukeConfig

    return sample_inputs(HEADS["LukeForEntitySpanClassification"], LukeConfig.from_json_file(folder / "config.json"))


def saved_pipeline(request, tmp_path, kind: str):
    """A spaCy pipeline with the ``kind`` pipe on its fixture checkpoint, saved to disk; the pipe and
    the padded batches it builds for the test docs."""
    factory, fixture, max_batch_cost = PIPES[kind]
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    pipe = nlp.add_pipe(factory, config={"pretrained": str(request.getfixturevalue(fixture)), "max_batch_cost": max_batch_cost})
    docs = make_docs(nlp, TEXTS[:12])
    for doc in docs:
        nlp.get_pipe("sentencizer")(doc)
    nlp.to_disk(tmp_path / "pipeline")
    batches = [padded for _, padded in padded_batches(pipe.model, *pipe.model_input(docs))]
    return pipe, batches


@pytest.mark.parametrize("kind", sorted(PIPES))
def test_onnx_runtime_equals_the_pipe_layer(request, tmp_path, kind):
    pipe, batches = saved_pipeline(request, tmp_path, kind)
    report = export_onnx(tmp_path / "pipeline", tmp_path / "onnx")
    assert report.head == HEAD_ALIASES[kind] and max(report.max_abs_diff.values()) <= ATOL
    runner = OnnxRunner.from_folder(tmp_path / "onnx")
    shapes = {(b["input_ids"].shape, b["entity_position_ids"].shape) for b in batches}
    assert len({b["input_ids"].shape[0] for b in batches}) >= 2 and len(shapes) >= 3  # batch / word / entity lengths
    sample = sample_inputs(HEADS[report.head], pipe.luke_model.config)
    assert (sample["input_ids"].shape, sample["entity_position_ids"].shape) not in shapes
    worst = 0.0
    for padded in batches:
        expected = head_layer(pipe.model).predict(padded)  # the thinc layer: float32, encoder unpadded
        got = runner.predict(padded)
        assert got.dtype == np.float32 and got.shape == expected.shape
        if got.ndim == 3:  # (batch, entities, width): the pipes read the real entity slots only
            real = padded["entity_attention_mask"].astype(bool)
            expected, got = expected[real], got[real]
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= ATOL, worst


def test_checkpoint_folder_is_self_contained(ner_checkpoint, tmp_path):
    from spacy_luke.tokenization import load_tokenizer

    out = tmp_path / "onnx"
    report = export_onnx(ner_checkpoint, out, lite=True, opset=18, int8=True)
    names = {p.name for p in out.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "config.json", "vocab.json", "merges.txt", "entity_vocab.json", "onnx_export.json"} <= names
    spec = json.loads((out / "onnx_export.json").read_text(encoding="utf8"))
    assert spec["head"] == "LukeForEntitySpanClassification" and spec["opset"] == 18 and spec["lite"] is True
    assert spec["model_files"] == {"float32": "model.onnx", "int8": "model.int8.onnx"}
    assert 0 < max(report.int8_max_abs_diff.values()) < 1.0  # quantized: close, not within 1e-4
    sample = ner_sample(out)
    float32, int8 = (OnnxRunner.from_folder(out, precision=p).predict(sample) for p in ("float32", "int8"))
    assert int8.shape == float32.shape and np.abs(int8 - float32).max() < 1.0
    assert [i["name"] for i in spec["inputs"]][-2:] == ["entity_start_positions", "entity_end_positions"]
    assert spec["inputs"][4]["axes"] == ["batch", "entities", "mention"] and spec["outputs"][0]["axes"] == ["batch", "entities", None]
    assert spec["parity"]["max_abs_diff"] == report.max_abs_diff
    tokenizer = load_tokenizer(out)  # the lite vocabulary: the special entities only
    assert len(tokenizer.entity_vocab) == 4
    assert json.loads((out / "config.json").read_text(encoding="utf8"))["entity_vocab_size"] == 4


def test_shared_queries_export_plain_attention(ner_checkpoint):
    """Public checkpoints have equal entity-aware queries: the export takes the plain attention path."""
    from spacy_luke.model import LukeForEntitySpanClassification

    model = LukeForEntitySpanClassification.from_pretrained(ner_checkpoint)
    share_queries(model)
    assert model.detect_shared_queries()
    runner = OnnxRunner.from_module(model)  # checked against torch on two samples
    inputs = sample_inputs(HEADS[runner.head], model.config, batch=4, words=20, entities=7, mention=3, seed=3)
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    assert np.abs(runner.predict(inputs) - expected).max() <= ATOL
    int8 = OnnxRunner.from_module(model, precision="int8", check=False)
    assert np.abs(int8.predict(inputs) - expected).max() < 1.0


def test_export_errors(ner_checkpoint, mlm_checkpoint, typer_checkpoint, tmp_path):
    with pytest.raises(OnnxExportError, match="names a LukeForMaskedLM.*head='encoder'"):
        export_onnx(mlm_checkpoint, tmp_path / "a")
    with pytest.raises(OnnxExportError, match="no trained LukeForEntityPairClassification head"):
        export_onnx(mlm_checkpoint, tmp_path / "b", head="relation")
    assert export_onnx(mlm_checkpoint, tmp_path / "b2", head="encoder").head == "LukeModel"  # no pooler: not exported
    with pytest.raises(OnnxExportError, match="shape"):
        export_onnx(ner_checkpoint, tmp_path / "c", head="typer")
    with pytest.raises(OnnxExportError, match="cannot be exported.*ner, typer"):
        export_onnx(ner_checkpoint, tmp_path / "d", head="LukeForMaskedLM")
    with pytest.raises(OnnxExportError, match="opset 14 or later"):
        export_onnx(ner_checkpoint, tmp_path / "e", opset=12)
    with pytest.raises(OnnxExportError, match="not found"):
        export_onnx(tmp_path / "nowhere", tmp_path / "f")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("", encoding="utf8")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(ner_checkpoint, tmp_path / "full")
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint)})
    nlp.add_pipe("luke_entity_typer", config={"pretrained": str(typer_checkpoint)})
    nlp.to_disk(tmp_path / "two")
    with pytest.raises(OnnxExportError, match=r"several LUKE pipes \(luke_entity_typer, luke_ner\).*--pipe"):
        export_onnx(tmp_path / "two", tmp_path / "g")
    with pytest.raises(OnnxExportError, match="no saved LUKE pipe named 'tagger'"):
        export_onnx(tmp_path / "two", tmp_path / "g", pipe="tagger")
    report = export_onnx(tmp_path / "two", tmp_path / "g", pipe="luke_entity_typer", check=False)
    assert report.head == "LukeForEntityClassification" and report.max_abs_diff == {}


def test_runner_rejects_other_batches(ner_checkpoint, tmp_path):
    export_onnx(ner_checkpoint, tmp_path / "onnx", check=False)
    runner = OnnxRunner.from_folder(tmp_path / "onnx")
    sample = ner_sample(ner_checkpoint)
    batch = dict(sample)
    del batch["entity_end_positions"]
    with pytest.raises(ValueError, match=r"lacks \['entity_end_positions'\]"):
        runner.predict(batch)
    with pytest.raises(ValueError, match=r"has \['token_type_ids'\]"):
        runner.predict({**sample, "token_type_ids": sample["input_ids"] * 0})
    with pytest.raises(OnnxExportError, match="onnx_export.json is missing"):
        OnnxRunner.from_folder(ner_checkpoint)
    with pytest.raises(OnnxExportError, match="no int8 graph.*--int8"):
        OnnxRunner.from_folder(tmp_path / "onnx", precision="int8")


def test_heads_and_aliases_agree():
    assert set(HEAD_ALIASES.values()) == set(HEADS)


def test_command_line(capsys, ner_checkpoint, mlm_checkpoint, tmp_path):
    out = tmp_path / "onnx"
    assert cli.main(["export-onnx", str(ner_checkpoint), str(out), "--head", "ner", "--opset", "17"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("Wrote LukeForEntitySpanClassification as ONNX (opset 17)") and "within" in err
    assert OnnxRunner.from_folder(out).predict(ner_sample(ner_checkpoint)).shape == (2, 3, 4)
    assert "is not empty: add --overwrite" in fails(capsys, "export-onnx", ner_checkpoint, out)
    assert cli.main(["export-onnx", str(ner_checkpoint), str(out), "--overwrite", "--no-check"]) == 0
    assert "not checked" in capsys.readouterr().err
    line = fails(capsys, "export-onnx", tmp_path / "no-such-model", tmp_path / "x")
    assert "no-such-model" in line and "not found" in line
    assert "names a LukeForMaskedLM" in fails(capsys, "export-onnx", mlm_checkpoint, tmp_path / "y")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["export-onnx", str(ner_checkpoint), str(tmp_path / "z"), "--opset", "9"])
    assert exit_.value.code == 2
    assert ">= 14" in capsys.readouterr().err


def test_overwrite_replaces_only_an_earlier_exports_files(ner_checkpoint, tmp_path):
    out = tmp_path / "onnx"
    export_onnx(ner_checkpoint, out, int8=True, check=False)
    (out / "notes.txt").write_text("mine", encoding="utf8")
    (tmp_path / "kept.json").write_text("outside", encoding="utf8")
    (out / "vocab.json").unlink()
    (out / "vocab.json").symlink_to(tmp_path / "kept.json")  # an export name: replaced, its target left alone
    export_onnx(ner_checkpoint, out, check=False, overwrite=True)
    names = {p.name for p in out.iterdir()}
    assert "notes.txt" in names and (out / "notes.txt").read_text(encoding="utf8") == "mine"
    assert "model.int8.onnx" not in names  # the earlier export's stale file is gone
    assert json.loads((out / "onnx_export.json").read_text(encoding="utf8"))["model_files"] == {"float32": "model.onnx"}
    assert not (out / "vocab.json").is_symlink() and (tmp_path / "kept.json").read_text(encoding="utf8") == "outside"
    assert OnnxRunner.from_folder(out).predict(ner_sample(ner_checkpoint)).shape == (2, 3, 4)


def test_overwrite_refuses_a_folder_that_is_not_an_export(ner_checkpoint, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}", encoding="utf8")
    (other / "data.txt").write_text("keep", encoding="utf8")
    with pytest.raises(OnnxExportError, match=r"other holds no earlier ONNX export \(onnx_export.json is missing\)"):
        export_onnx(ner_checkpoint, other, check=False, overwrite=True)
    (other / "onnx_export.json").write_text(json.dumps({"format": "someone-else"}), encoding="utf8")
    with pytest.raises(OnnxExportError, match="onnx_export.json is not a spacy-luke-onnx description"):
        export_onnx(ner_checkpoint, other, check=False, overwrite=True)
    assert sorted(p.name for p in other.iterdir()) == ["config.json", "data.txt", "onnx_export.json"]
    assert (other / "config.json").read_text(encoding="utf8") == "{}"
    out = tmp_path / "onnx"
    export_onnx(ner_checkpoint, out, check=False)
    (out / "config.json").unlink()
    (out / "config.json").mkdir()  # where the export writes a file
    (out / "config.json" / "inside").write_text("", encoding="utf8")
    with pytest.raises(OnnxExportError, match="config.json is a folder, where the export writes a file"):
        export_onnx(ner_checkpoint, out, check=False, overwrite=True)
    assert (out / "config.json" / "inside").is_file() and (out / "model.onnx").is_file()


def test_output_must_lie_outside_the_source(ner_checkpoint, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    nlp = spacy.blank("en")
    nlp.add_pipe("luke_ner", config={"pretrained": str(ner_checkpoint)})
    nlp.to_disk(work / "pipeline")
    (work / "unrelated.txt").write_text("keep", encoding="utf8")
    checkpoint = tmp_path / "checkpoint"  # a copy: the shared fixture is never an output
    shutil.copytree(ner_checkpoint, checkpoint)
    (tmp_path / "link").symlink_to(work / "pipeline")
    pipeline = work / "pipeline"
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    refused = [
        (pipeline, work, "contains the source folder"),  # a parent of the source
        (pipeline, pipeline, "source folder"),
        (pipeline, pipeline / "luke_ner" / "..", "source folder"),  # the source itself, by ..
        (pipeline, tmp_path / "link", "source folder"),  # the source itself, by a link
        (pipeline, pipeline / "luke_ner" / "luke", "is the source folder"),
        (pipeline, pipeline / "onnx", "is inside the source folder"),  # new, but inside the source
        (checkpoint, checkpoint, "is the source folder"),
    ]
    for source, output, message in refused:
        with pytest.raises(OnnxExportError, match=message):
            export_onnx(source, output, check=False, overwrite=True)
        with pytest.raises(OnnxExportError, match=message):
            export_onnx(source, output, check=False)
    line = fails(capsys, "export-onnx", pipeline, work, "--overwrite", "--no-check")
    assert "work contains the source folder" in line and "outside the source" in line
    line = fails(capsys, "export-onnx", checkpoint, checkpoint, "--overwrite", "--no-check")
    assert "is the source folder" in line
    line = fails(capsys, "export-onnx", checkpoint, pipeline / "luke_ner", "--overwrite", "--no-check")
    assert "luke_ner holds no earlier ONNX export" in line  # another pipeline's pipe folder: not an export
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written or removed
    assert (work / "unrelated.txt").read_text(encoding="utf8") == "keep" and (checkpoint / "model.safetensors").is_file()

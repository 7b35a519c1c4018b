"""Writes this folder's test data with the code of commit 19ee252 (before the thinc model owned the
path from Docs to scores): a saved pipeline of the five LUKE pipes on the test fixtures'
random-weight checkpoints, without its weights (``model.safetensors`` removed), and the
annotations that code gave on ``TEXTS``. ``tests/test_saved_pipelines.py`` rebuilds the weights
from the same checkpoints and checks that the pipeline still loads and annotates the same.

Run from a checkout of that commit: ``PYTHONPATH=.:tests python tests/data/saved_before_redesign/make_data.py OUT``.
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/: the fixture builders


def _without_installed_entry_points() -> None:
    """The old code registers its names by import; the installed (newer) package's entry points
    name modules it does not have, so they are hidden from catalogue."""
    import catalogue

    from importlib.metadata import entry_points

    every = entry_points()
    groups = {point.group for point in every} if not isinstance(every, dict) else set(every)
    catalogue.AVAILABLE_ENTRY_POINTS = {
        group: [p for p in entry_points(group=group) if not p.value.startswith("spacy_luke")] for group in groups
    }


_without_installed_entry_points()
import spacy_luke.pipeline  # noqa: E402,F401  (registers the old code's names)

from pipelines_before import TEXTS, annotations, build_checkpoints, build_pipeline  # noqa: E402


def main(out: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="saved-before-"))
    nlp = build_pipeline(build_checkpoints(root))
    expected = [annotations(doc) for doc in nlp.pipe(TEXTS)]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    nlp.to_disk(out / "pipeline")
    for weights in (out / "pipeline").rglob("model.safetensors"):
        weights.unlink()
    (out / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Peak memory while loading a luke-large-shaped checkpoint, against the size of its weights.

Run by hand (not in CI)::

    python benchmarks/bench_load_memory.py [--work-dir /tmp/spacy-luke-bench] [--entities 500000]

Builds (once) a checkpoint of luke-large's shape with random weights, written by transformers'
``save_pretrained`` (safetensors): hidden 1024, 24 layers, 16 heads, intermediate 4096, a
50,267-piece word table and a 500,000 x 256 entity table. Then, each in a fresh subprocess,
loads it with ``LukeModel.from_pretrained`` (full, and ``lite=True``), and for comparison with
transformers' ``LukeModel.from_pretrained``, and reports the peak resident memory the load
added (``VmHWM`` minus the resident memory just before loading) divided by the size of the
weights the model ends up with. The goal: at most 1.3x.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import peak_rss_bytes, rss_bytes  # noqa: E402

LARGE = dict(common.SHAPES["large"], vocab_size=50267, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
             use_entity_aware_attention=True)


def build(folder: Path, entities: int) -> Path:
    if (folder / "config.json").is_file():
        return folder
    common.save_random_luke(folder, "LukeModel", seed=0, entity_vocab_size=entities, **LARGE)
    common.write_json(folder, "entity_vocab.json", common.entity_vocab(entities))
    return folder


def measure(folder: Path, how: str) -> dict:
    """Runs in a subprocess: load once, report peak RSS added and the loaded weights' bytes."""
    import gc

    import torch

    if how == "transformers":
        import transformers

        cls = transformers.LukeModel
        kwargs = {}
    else:
        import spacy_luke.model as ours

        cls = ours.LukeModel
        kwargs = {"lite": how == "ours-lite"}
    gc.collect()
    before = rss_bytes()
    peak_before = peak_rss_bytes()
    model = cls.from_pretrained(folder, **kwargs)
    peak_load = peak_rss_bytes()
    # Weights read from safetensors may stay file-backed (mmap) until first use: touch every
    # page so the peak counts the whole model resident, as it is once it runs.
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.sum()
    peak = peak_rss_bytes()
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    after = rss_bytes()
    del model
    return {
        "how": how,
        "weights_mb": weights / 2**20,
        "rss_before_mb": before / 2**20,
        "peak_added_mb": (max(peak, peak_before) - before) / 2**20,
        "peak_added_before_touch_mb": (max(peak_load, peak_before) - before) / 2**20,
        "rss_after_mb": after / 2**20,
        "peak_ratio": (max(peak, peak_before) - before) / weights,
        "kept_ratio": (after - before) / weights,
        "torch": torch.__version__,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=os.environ.get("SPACY_LUKE_BENCH_DIR", "/tmp/spacy-luke-bench"))
    parser.add_argument("--entities", type=int, default=500_000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--how", default="ours", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.how)))
        return
    folder = build(Path(args.work_dir) / f"luke-large-shape-{args.entities}", args.entities)
    files = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    print(f"checkpoint: {folder} ({files / 2**20:.0f} MB of safetensors)")
    results = []
    for how in ("ours", "ours-lite", "transformers"):
        out = subprocess.run([sys.executable, __file__, "--measure", str(folder), "--how", how],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{how:13s} weights {result['weights_mb']:8.0f} MB  peak added {result['peak_added_mb']:8.0f} MB  "
              f"peak/weights {result['peak_ratio']:.2f}  kept/weights {result['kept_ratio']:.2f}  "
              f"(peak added before touching the weights {result['peak_added_before_touch_mb']:.0f} MB)")
    return results


if __name__ == "__main__":
    main()
